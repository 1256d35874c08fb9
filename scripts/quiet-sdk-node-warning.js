// Preloaded by the npm scripts (`--import ./scripts/quiet-sdk-node-warning.js`) and set by
// vitest.config.ts. On Node 20 the AWS SDK prints a 9-line "NodeVersionSupportWarning" (its releases
// after January 2027 need Node 22) once per process; this turns off that one warning through the
// SDK's own switch (@aws-sdk/core, emitWarningIfUnsupportedVersion) and leaves every other warning
// alone. Set through the environment, it also reaches the child processes a script starts. A value
// the user set is kept, so `AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=false` shows it again.
import process from 'node:process';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
