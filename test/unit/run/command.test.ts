import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { commandScript, jobEnvScript, parseParamPairs, shellQuote, substituteParams } from '../../../src/run/command.js';
import { VmwuError } from '../../../src/errors.js';

test('params parse as name=value, values may hold = and be empty', () => {
  assert.deepEqual(parseParamPairs(['n=5', 'expr=a=b', 'e=']), { n: '5', expr: 'a=b', e: '' });
  assert.throws(() => parseParamPairs(['novalue']), VmwuError);
  assert.throws(() => parseParamPairs(['1x=2']), /not a valid parameter name/);
  assert.throws(() => parseParamPairs(['VMWU_X=2']), /reserved/);
});

test('${k} is substituted for known params only', () => {
  assert.equal(substituteParams('/app/run ${n} ${HOME} $n', { n: '5' }), '/app/run 5 ${HOME} $n');
});

test('the command script keeps each word whole through sh, whatever it holds', () => {
  const words = ['printf', '%s|', "it's", 'a b', '$(touch /tmp/pwned)', '${n}', '\\'];
  const script = commandScript(words, { n: '7' });
  const out = execFileSync('sh', ['-c', script]).toString();
  assert.equal(out, "it's|a b|$(touch /tmp/pwned)|7|\\|");
});

test('job.env exports params with their exact values', () => {
  const env = jobEnvScript({ a: "x'y z", b: '$HOME' }, { RUN_ID: 'r1' });
  const out = execFileSync('sh', ['-c', `${env}\nprintf '%s|%s|%s' "$a" "$b" "$VMWU_RUN_ID"`]).toString();
  assert.equal(out, "x'y z|$HOME|r1");
  assert.equal(shellQuote(''), "''");
});

test('an empty command is refused with a hint', () => {
  assert.throws(() => commandScript([], {}), (e: VmwuError) => e.code === 'NO_COMMAND' && /--/.test(e.hint ?? ''));
});
