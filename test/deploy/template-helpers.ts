import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import type { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { CfnRole, IRole } from 'aws-cdk-lib/aws-iam';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { addDynamoCdcStacks } from '../../deploy/app.js';
import type { DynamoCdcStacks } from '../../deploy/app.js';
import { resolveDeployParams } from '../../deploy/params.js';
import type { DeployParamsInput } from '../../deploy/params.js';
import type { App as DynamoCdcApp } from '../../src/app.js';

/** A stream ARN in AWS's documentation account. */
export const STREAM_ARN = 'arn:aws:dynamodb:eu-west-1:123456789012:table/TaskApp/stream/2026-01-01T00:00:00.000';

/** Both stacks synthesized into a temporary cloud assembly. */
export interface Synthesized {
  readonly stacks: DynamoCdcStacks;
  readonly assembly: CloudAssembly;
  readonly lambda: Template;
  readonly worker: Template;
}

const outdirs: string[] = [];

/**
 * Synthesizes both stacks from raw parameters, as the CDK CLI would: bundling included, unless
 * `bundling: false` (then the function's code is a placeholder, and synthesis takes a second
 * instead of an esbuild run).
 */
export const synthesize = (input: DeployParamsInput, options: { bundling?: boolean; routes?: DynamoCdcApp } = {}): Synthesized => {
  const outdir = mkdtempSync(join(tmpdir(), 'dynamo-cdc-deploy-'));
  outdirs.push(outdir);
  // The CDK CLI's `--exclusively` context: which stacks to bundle; none when empty.
  const app = new App({ outdir, ...(options.bundling === false ? { context: { 'aws:cdk:bundling-stacks': [] } } : {}) });
  const stacks = options.routes ? addDynamoCdcStacks(app, resolveDeployParams(input), options.routes) : addDynamoCdcStacks(app, resolveDeployParams(input));
  const assembly = app.synth();
  return { stacks, assembly, lambda: Template.fromStack(stacks.lambda), worker: Template.fromStack(stacks.worker) };
};

/** Removes the temporary assemblies. */
export const removeAssemblies = (): void => {
  for (const dir of outdirs.splice(0)) rmSync(dir, { recursive: true, force: true });
};

/** An IAM statement as CloudFormation holds it. */
export interface Statement {
  readonly Sid?: string;
  readonly Effect: 'Allow' | 'Deny';
  readonly Action: string | readonly string[];
  readonly Resource: unknown;
}

interface PolicyResource {
  readonly Properties: { readonly PolicyDocument: { readonly Statement: readonly Statement[] }; readonly Roles?: readonly unknown[] };
}

const asArray = <T>(value: T | readonly T[]): readonly T[] => (Array.isArray(value) ? value : [value as T]);

/** Every statement of every AWS::IAM::Policy in the template, with the policy's logical id. */
export const policyStatements = (template: Template): { policy: string; statement: Statement }[] =>
  Object.entries(template.findResources('AWS::IAM::Policy') as Record<string, PolicyResource>).flatMap(([policy, resource]) =>
    resource.Properties.PolicyDocument.Statement.map((statement) => ({ policy, statement })),
  );

export const actionsOf = (statement: Statement): readonly string[] => asArray(statement.Action);

export const resourcesOf = (statement: Statement): readonly unknown[] => asArray(statement.Resource);

/**
 * A CloudFormation value as a readable string: `{ Ref: X }` → `${X}`, `Fn::GetAtt` → `${Id.Attr}`,
 * `Fn::Join` joined, `Fn::Sub` as written. Lets tests compare ARNs without restating token trees.
 */
export const render = (value: unknown): string => {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object') {
    const object = value as Record<string, unknown>;
    if (typeof object['Ref'] === 'string') return `\${${object['Ref']}}`;
    const getAtt = object['Fn::GetAtt'];
    if (Array.isArray(getAtt)) return `\${${getAtt.map(String).join('.')}}`;
    const join = object['Fn::Join'];
    if (Array.isArray(join) && typeof join[0] === 'string' && Array.isArray(join[1])) return (join[1] as unknown[]).map(render).join(join[0]);
    const sub = object['Fn::Sub'];
    if (typeof sub === 'string') return sub;
  }
  return JSON.stringify(value);
};

/** The statements of the role's default policy, by Sid: actions and rendered resources. */
export const grantsOf = (stack: Stack, template: Template, role: IRole): Record<string, { actions: readonly string[]; resources: readonly string[] }> => {
  const roleId = stack.getLogicalId(role.node.defaultChild as CfnRole);
  const policies = Object.values(template.findResources('AWS::IAM::Policy') as Record<string, PolicyResource>).filter((p) =>
    (p.Properties.Roles ?? []).some((r) => render(r) === `\${${roleId}}`),
  );
  const grants: Record<string, { actions: readonly string[]; resources: readonly string[] }> = {};
  for (const statement of policies.flatMap((p) => p.Properties.PolicyDocument.Statement)) {
    grants[statement.Sid ?? '(no Sid)'] = { actions: actionsOf(statement), resources: resourcesOf(statement).map(render) };
  }
  return grants;
};

/** The rendered value of a token of `stack`, such as a table's ARN. */
export const rendered = (stack: Stack, token: string): string => render(stack.resolve(token));
