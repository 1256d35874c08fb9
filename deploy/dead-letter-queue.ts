import { Duration, Validations } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import type { IAlarmAction } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** Options of {@link DeadLetterQueue}. */
export interface DeadLetterQueueProps {
  /** What lands in the queue, for the alarm's description. */
  readonly holds: string;
  /** The alarm fires when at least this many messages are visible. */
  readonly alarmThreshold: number;
}

/**
 * An SQS queue for what could not be delivered, kept as long as SQS allows (14 days), encrypted
 * with SQS-managed keys (so no KMS permission is needed to send), TLS only, and an alarm on its
 * depth: a message here is a record someone has to look at.
 */
export class DeadLetterQueue extends Construct {
  readonly queue: Queue;
  readonly alarm: Alarm;

  constructor(scope: Construct, id: string, props: DeadLetterQueueProps) {
    super(scope, id);
    this.queue = new Queue(this, 'Queue', {
      retentionPeriod: Duration.days(14),
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    Validations.of(this.queue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself a dead-letter queue: the code (SendMessage) or Lambda (the on-failure destination) puts messages here, not an SQS redrive policy, which is what cdk-nag looks for. Nothing consumes it with a receive limit, so a dead-letter queue of its own would never receive anything; the depth alarm is what catches its messages.',
    });
    this.alarm = new Alarm(this, 'DepthAlarm', {
      alarmDescription: `${props.holds} are waiting in ${id}: look at them, fix the cause, then redrive.`,
      metric: this.queue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: Duration.minutes(1) }),
      threshold: props.alarmThreshold,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
  }
}

/** Sends every alarm's state changes (into ALARM and back to OK) to the topic, when there is one. */
export const notifyOnAlarms = (scope: Construct, alarms: readonly Alarm[], topicArn: string | undefined): void => {
  if (!topicArn) return;
  const action: IAlarmAction = new SnsAction(Topic.fromTopicArn(scope, 'AlarmTopic', topicArn));
  for (const alarm of alarms) {
    alarm.addAlarmAction(action);
    alarm.addOkAction(action);
  }
};
