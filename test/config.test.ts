import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism, homedir, hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, formatProblem, loadConfig, parseConfig, systemTimezone, UTC_ZONE_NAMES } from '../src/node/config/config.js';
import {
  CLIENT_KEYS,
  JOB_KEYS,
  NODE_KEYS,
  SECTIONS,
  STORAGE_KEYS,
  TARGET_KEYS,
} from '../src/node/config/keys.js';
import type { ConfigProblem, NodeConfig } from '../src/node/config/types.js';

const fixtures = fileURLToPath(new URL('../../test/fixtures/cfg/', import.meta.url));
const examplePath = fileURLToPath(new URL('../../node.cfg.example', import.meta.url));
const NODE_DIR = '/srv/nightjar';
const FILE = '/srv/nightjar/node.cfg';
const D = 24 * 3600 * 1000;
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function parse(text: string, nodeDir = NODE_DIR) {
  return parseConfig(text, { file: FILE, nodeDir });
}

/** Parses text that must be valid and returns its config. */
function valid(text: string, nodeDir = NODE_DIR): NodeConfig {
  const { config, problems } = parse(text, nodeDir);
  assert.deepEqual(problems.map(formatProblem), []);
  assert.ok(config);
  return config;
}

/** Parses text that must have exactly one problem and returns it. */
function oneProblem(text: string): ConfigProblem {
  const { config, problems } = parse(text);
  assert.equal(config, null);
  assert.equal(problems.length, 1, problems.map(formatProblem).join('\n'));
  return problems[0]!;
}

/** The lines of a config, joined; keeps line numbers easy to count in tests. */
function cfg(...lines: string[]): string {
  return lines.join('\n') + '\n';
}

const JOB = ['[targets]', 'local = local:repository', '[backups]', 'b1.source = /data', 'b1.target = local'];

test('an empty file is valid: defaults, no jobs, no targets', () => {
  const config = valid('');
  assert.equal(config.file, FILE);
  assert.equal(config.nodeDir, NODE_DIR);
  assert.deepEqual(config.node, {
    nickname: hostname(),
    webListen: '127.0.0.1',
    webPort: 3456,
    webAllowRemote: false,
    webHostnames: [],
    bandwidth: null,
    workers: Math.min(4, availableParallelism()),
    maxConcurrentJobs: 1,
    logLevel: 'info',
    timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
  });
  assert.deepEqual(config.storage, {
    enabled: false,
    listen: '0.0.0.0',
    port: 7788,
    plainHttp: false,
    path: '/srv/nightjar/storage',
    reservedSpace: GiB,
    staleAfterMs: 3 * D,
    maxObjectSize: 256 * MiB,
  });
  assert.deepEqual(config.clients, {});
  assert.deepEqual(config.targets, {});
  assert.deepEqual(config.jobs, {});
  assert.deepEqual(valid('# only a comment\n\n[node]\n[backups]\n'), { ...config });
});

test('every [node] and [storage] key is read', () => {
  const config = valid(
    cfg(
      '[node]',
      'nickname = "my laptop"',
      'web.listen = 0.0.0.0',
      'web.port = 8080',
      'web.allow_remote = yes',
      'web.hostnames = nightjar.home.arpa, 192.168.1.5',
      'bandwidth = mon-fri 0800-2200 256KiB/s, 2200-0800 off',
      'workers = 8',
      'max_concurrent_jobs = 2',
      'log_level = debug',
      'timezone = europe/berlin',
      '[storage]',
      'enabled = true',
      'listen = ::',
      'port = 9000',
      'plain_http = on',
      'path = /var/lib/nightjar-storage',
      'reserved_space = 10GiB',
      'stale_after = 1week',
      'max_object_size = 64MiB',
    ),
  );
  assert.equal(config.node.nickname, 'my laptop');
  assert.equal(config.node.webListen, '0.0.0.0');
  assert.equal(config.node.webPort, 8080);
  assert.equal(config.node.webAllowRemote, true);
  assert.deepEqual(config.node.webHostnames, ['nightjar.home.arpa', '192.168.1.5']);
  assert.equal(config.node.bandwidth?.entries.length, 2);
  assert.equal(config.node.bandwidth?.entries[0]?.bytesPerSecond, 256 * 1024);
  assert.equal(config.node.workers, 8);
  assert.equal(config.node.maxConcurrentJobs, 2);
  assert.equal(config.node.logLevel, 'debug');
  assert.equal(config.node.timezone, 'Europe/Berlin');
  assert.deepEqual(config.storage, {
    enabled: true,
    listen: '::',
    port: 9000,
    plainHttp: true,
    path: '/var/lib/nightjar-storage',
    reservedSpace: 10 * GiB,
    staleAfterMs: 7 * D,
    maxObjectSize: 64 * MiB,
  });
  assert.equal(valid('[node]\nbandwidth = off\n').node.bandwidth, null);
  assert.equal(valid('[node]\nweb.port = 0\n').node.webPort, 0);
});

test('every [clients] key is read, with defaults', () => {
  const config = valid(cfg('[clients]', 'alice.quota = 500GiB', 'bob.append_only = false', 'carol.quota = none'));
  assert.deepEqual(config.clients, {
    alice: { name: 'alice', quota: 500 * GiB, appendOnly: true },
    bob: { name: 'bob', quota: null, appendOnly: false },
    carol: { name: 'carol', quota: null, appendOnly: true },
  });
});

test('every [targets] key is read for local, node and s3 targets', () => {
  const fp = 'AB:'.repeat(31) + 'AB';
  const config = valid(
    cfg(
      '[targets]',
      'local = local:repository',
      'usb = local:/mnt/usb/nightjar',
      'usb.passphrase_file = private/usb-passphrase',
      'usb.bandwidth = 1MiB/s',
      'usb.budget = 20GiB/night',
      'parents = node:https://parents.example.net:7788',
      'parents.token_file = private/parents.token',
      `parents.fingerprint = ${fp}`,
      'lan = node:http://192.168.1.9:7788/',
      'lan.plain_http = true',
      'lan.token_file = /etc/nightjar/lan.token',
      'office = s3://nightjar-backups/office/',
      'office.endpoint = https://s3.example.com/',
      'office.region = eu-central-1',
      'office.path_style = true',
      'office.access_key_file = private/office.access',
      'office.secret_key_file = private/office.secret',
      'office.storage_class = STANDARD_IA',
      'bare = s3://just-a-bucket',
    ),
  );
  const t = config.targets;
  assert.deepEqual(Object.keys(t), ['local', 'usb', 'parents', 'lan', 'office', 'bare']);
  assert.deepEqual(t.local, {
    alias: 'local',
    kind: 'local',
    url: 'local:repository',
    location: '/srv/nightjar/repository',
    passphraseFile: '/srv/nightjar/private/passphrase',
    bandwidth: null,
    budget: null,
    tokenFile: null,
    fingerprint: null,
    endpoint: null,
    region: null,
    pathStyle: false,
    accessKeyFile: null,
    secretKeyFile: null,
    storageClass: null,
  });
  assert.equal(t.usb?.location, '/mnt/usb/nightjar');
  assert.equal(t.usb?.passphraseFile, '/srv/nightjar/private/usb-passphrase');
  assert.equal(t.usb?.bandwidth?.entries[0]?.bytesPerSecond, MiB);
  assert.deepEqual(t.usb?.budget, { spec: '20GiB/night', bytes: 20 * GiB, per: 'window' });
  assert.equal(t.parents?.kind, 'node');
  assert.equal(t.parents?.location, 'https://parents.example.net:7788');
  assert.equal(t.parents?.tokenFile, '/srv/nightjar/private/parents.token');
  assert.equal(t.parents?.fingerprint, 'ab'.repeat(32));
  assert.equal(t.lan?.location, 'http://192.168.1.9:7788');
  assert.equal(t.lan?.fingerprint, null);
  assert.equal(t.office?.kind, 's3');
  assert.equal(t.office?.location, 'nightjar-backups/office');
  assert.equal(t.office?.endpoint, 'https://s3.example.com');
  assert.equal(t.office?.region, 'eu-central-1');
  assert.equal(t.office?.pathStyle, true);
  assert.equal(t.office?.accessKeyFile, '/srv/nightjar/private/office.access');
  assert.equal(t.office?.secretKeyFile, '/srv/nightjar/private/office.secret');
  assert.equal(t.office?.storageClass, 'STANDARD_IA');
  assert.equal(t.bare?.location, 'just-a-bucket');
  assert.equal(t.bare?.region, 'us-east-1');
});

test('every [backups] key is read, and defaults apply to every job', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nightjar-cfg-'));
  try {
    writeFileSync(join(dir, 'excludes.txt'), '# build output\n*.o\n\nbuild/\n');
    const config = valid(
      cfg(
        '[targets]',
        'local = local:repository',
        'usb = local:/mnt/usb',
        '[backups]',
        'defaults.target = local',
        'defaults.exclude = *.tmp, .cache/',
        'defaults.allowed_times = 2200-2400,0000-0800',
        'defaults.keep = daily 7',
        'b1.source = /home/me/Photos',
        'b1.target = usb:photos',
        'b1.frequency = 1week',
        'b1.allowed_times = mon-fri 2200-0600',
        'b1.timezone = America/New_York',
        'b1.bandwidth = 1MiB/s',
        'b1.read_bandwidth = 20MiB/s',
        'b1.budget = 50GiB/day',
        'b1.exclude = *.raw',
        'b1.exclude_file = excludes.txt',
        'b1.max_file_size = 4GiB',
        'b1.min_file_age = 10m',
        'b1.one_file_system = 1',
        'b1.keep = last 3, within 30d',
        'b1.pre_command = /usr/local/bin/mount-disk',
        'b1.post_command = logger done',
        'b1.on_failure = "echo failed; exit 1"',
        'b1.on_overdue = echo overdue',
        'b1.hook_timeout = 30s',
        'b1.verify_frequency = 1month',
        'b1.verify_read_data = 25%',
        'b1.prune_frequency = 2weeks',
        'b1.alert_after = 3d',
        'b1.on_window_close = finish_file',
        'b1.max_delete_ratio = 0.2',
        'b1.enabled = no',
        'b2.source = documents',
        'b2.schedule = 0 3 * * *',
        'b2.max_delete_ratio = 75%',
      ),
      dir,
    );
    const b1 = config.jobs.b1!;
    assert.deepEqual(b1, {
      name: 'b1',
      source: '/home/me/Photos',
      target: { alias: 'usb', name: 'photos' },
      frequencyMs: 7 * D,
      schedule: null,
      allowedTimes: { spec: 'mon-fri 2200-0600', windows: [{ days: [1, 2, 3, 4, 5], startMinute: 1320, endMinute: 360 }] },
      timezone: 'America/New_York',
      bandwidth: { spec: '1MiB/s', entries: [{ days: [0, 1, 2, 3, 4, 5, 6], startMinute: 0, endMinute: 1440, bytesPerSecond: MiB }] },
      readBandwidth: { spec: '20MiB/s', entries: [{ days: [0, 1, 2, 3, 4, 5, 6], startMinute: 0, endMinute: 1440, bytesPerSecond: 20 * MiB }] },
      budget: { spec: '50GiB/day', bytes: 50 * GiB, per: 'day' },
      exclude: ['*.tmp', '.cache/', '*.raw', '*.o', 'build/'],
      excludeFile: join(dir, 'excludes.txt'),
      maxFileSize: 4 * GiB,
      minFileAgeMs: 10 * 60 * 1000,
      oneFileSystem: true,
      keep: { spec: 'last 3, within 30d', last: 3, withinMs: 30 * D },
      preCommand: '/usr/local/bin/mount-disk',
      postCommand: 'logger done',
      onFailure: 'echo failed; exit 1',
      onOverdue: 'echo overdue',
      hookTimeoutMs: 30_000,
      verifyFrequencyMs: 30 * D,
      verifyReadDataPercent: 25,
      pruneFrequencyMs: 14 * D,
      alertAfterMs: 3 * D,
      onWindowClose: 'finish_file',
      maxDeleteRatio: 0.2,
      enabled: false,
    });
    const b2 = config.jobs.b2!;
    assert.equal(b2.source, join(dir, 'documents'));
    assert.deepEqual(b2.target, { alias: 'local', name: 'b2' });
    assert.equal(b2.frequencyMs, null);
    assert.equal(b2.schedule, '0 3 * * *');
    assert.equal(b2.allowedTimes.spec, '2200-2400,0000-0800');
    assert.deepEqual(b2.exclude, ['*.tmp', '.cache/']);
    assert.deepEqual(b2.keep, { spec: 'daily 7', daily: 7 });
    assert.equal(b2.maxDeleteRatio, 0.75);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a job with only source and target gets every default', () => {
  const job = valid(cfg(...JOB)).jobs.b1!;
  assert.equal(job.frequencyMs, D);
  assert.equal(job.schedule, null);
  assert.deepEqual(job.allowedTimes, { spec: 'always', windows: [] });
  assert.equal(job.timezone, Intl.DateTimeFormat().resolvedOptions().timeZone);
  assert.deepEqual(job.target, { alias: 'local', name: 'b1' });
  assert.deepEqual(job.exclude, []);
  assert.equal(job.excludeFile, null);
  assert.equal(job.hookTimeoutMs, 10 * 60 * 1000);
  assert.equal(job.verifyReadDataPercent, 10);
  assert.equal(job.maxDeleteRatio, 0.5);
  assert.equal(job.onWindowClose, 'suspend');
  assert.equal(job.oneFileSystem, false);
  assert.equal(job.enabled, true);
  assert.equal(job.keep, null);
  assert.equal(job.alertAfterMs, null);
  assert.equal(valid(cfg('[node]', 'timezone = Asia/Tokyo', ...JOB)).jobs.b1?.timezone, 'Asia/Tokyo');
});

test('booleans accept true/false, yes/no, on/off and 1/0 in any case', () => {
  for (const [word, want] of [
    ['true', true], ['yes', true], ['on', true], ['1', true], ['TRUE', true], ['Yes', true],
    ['false', false], ['no', false], ['off', false], ['0', false], ['"false"', false],
  ] as const) {
    assert.equal(valid(`[storage]\nenabled = ${word}\n`).storage.enabled, want, word);
  }
  const p = oneProblem('[storage]\nenabled = maybe\n');
  assert.deepEqual(p, { file: FILE, line: 2, section: 'storage', key: 'enabled', found: 'maybe', expected: 'true or false (also yes/no, on/off, 1/0)' });
});

test('paths: relative to the node directory, ~ is the home directory', () => {
  const config = valid(cfg('[targets]', 'local = local:repository', 'home = local:~/backups', '[backups]', 'b1.source = ~', 'b1.target = home', 'b2.source = ../elsewhere', 'b2.target = local'));
  assert.equal(config.targets.home?.location, join(homedir(), 'backups'));
  assert.equal(config.jobs.b1?.source, homedir());
  assert.equal(config.jobs.b2?.source, '/srv/elsewhere');
  assert.match(oneProblem(cfg(...JOB, 'b2.source = ~bob/x', 'b2.target = local')).expected, /~user is not expanded/);
});

test('ini quirks: quotes, inline comments, CRLF, BOM and repeated sections', () => {
  const config = valid(
    '\uFEFF[node]\r\nnickname = "semi;colon # hash"  \r\n' +
      "log_level = warn ; a comment\r\n[storage]\r\nport = 7000 # another\r\n[node]\r\nweb.port = '4000'\r\n",
  );
  assert.equal(config.node.nickname, 'semi;colon # hash');
  assert.equal(config.node.logLevel, 'warn');
  assert.equal(config.storage.port, 7000);
  assert.equal(config.node.webPort, 4000);
});

test('ini quirks refused: key[] arrays, dotted sections, keys before any section, lines without =', () => {
  const cases: Array<[string, Partial<ConfigProblem>, RegExp]> = [
    [cfg('[node]', 'web.hostnames[] = a'), { line: 2, section: 'node', key: 'web.hostnames[]' }, /write a comma-separated list/],
    [cfg('[node]', '[node.web]', 'port = 1'), { line: 2, section: null, found: '[node.web]' }, /one of the sections .*; did you mean \[node\]\?/],
    [cfg('nickname = x', '[node]'), { line: 1, section: null, key: 'nickname' }, /a \[section\] header first/],
    [cfg('[node]', 'nickname'), { line: 2, section: 'node', found: 'nickname' }, /a line of the form KEY = VALUE/],
    [cfg('[node]', '= 5'), { line: 2, found: '= 5' }, /a line of the form KEY = VALUE/],
  ];
  for (const [text, want, expected] of cases) {
    const p = oneProblem(text);
    assert.deepEqual({ ...p, ...want }, p, text);
    assert.match(p.expected, expected, text);
  }
});

test('unknown sections and keys get a "did you mean"', () => {
  const cases: Array<[string, string, RegExp]> = [
    [cfg('[Backups]'), '[Backups]', /did you mean \[backups\]\?/],
    [cfg('[targts]'), '[targts]', /did you mean \[targets\]\?/],
    [cfg('[node]', 'web.prot = 1'), 'web.prot', /^unknown key in \[node\]; did you mean "web.port"\?$/],
    [cfg('[node]', 'web_port = 1'), 'web_port', /did you mean "web.port"\?/],
    [cfg('[storage]', 'stale_afer = 1d'), 'stale_afer', /did you mean "stale_after"\?/],
    [cfg('[node]', 'port = 1'), 'port', /port belongs in \[storage\]/],
    [cfg('[node]', 'colour = blue'), 'colour', /known keys: nickname, web.listen/],
    [cfg('[clients]', 'alice.qouta = 1GiB'), 'alice.qouta', /did you mean "alice.quota"\?/],
    [cfg('[targets]', 'local = local:r', 'local.bandwith = 1MiB/s'), 'local.bandwith', /did you mean "local.bandwidth"\?/],
    [cfg(...JOB, 'b1.frequncy = 1d'), 'b1.frequncy', /did you mean "b1.frequency"\?/],
    [cfg(...JOB, 'b1.Source2 = /x'), 'b1.Source2', /did you mean "b1.source"\?/],
    [cfg(...JOB, 'defaults.exlude = *.o'), 'defaults.exlude', /did you mean "defaults.exclude"\?/],
    [cfg(...JOB, 'b1.compression = max'), 'b1.compression', /see node.cfg.example for every key/],
  ];
  for (const [text, key, expected] of cases) {
    const p = oneProblem(text);
    if (key.startsWith('[')) assert.equal(p.found, key);
    else assert.equal(p.key, key);
    assert.match(p.expected, expected, text);
  }
});

test('a key written twice names both lines', () => {
  const p = oneProblem(cfg('[node]', 'nickname = a', 'log_level = info', 'nickname = b'));
  assert.equal(p.line, 4);
  assert.equal(p.key, 'nickname');
  assert.match(p.expected, /written twice \(lines 2 and 4\)/);
  // Across two [node] headers it is still the same key.
  assert.match(oneProblem(cfg('[node]', 'workers = 2', '[storage]', '[node]', 'workers = 3')).expected, /lines 2 and 5/);
});

test('inline secrets in any section are refused, and their value is never echoed', () => {
  const cases: Array<[string, string, string]> = [
    [cfg('[targets]', 'local = local:r', 'local.passphrase = hunter2'), 'local.passphrase', 'use local.passphrase_file = PATH'],
    [cfg('[targets]', 'p = node:https://h:1', 'p.token_file = t', 'p.fingerprint = ' + 'a'.repeat(64), 'p.token = abc'), 'p.token', 'use p.token_file = PATH'],
    [cfg('[targets]', 'o = s3://bucket', 'o.access_key = AKIA'), 'o.access_key', 'use o.access_key_file = PATH'],
    [cfg('[targets]', 'o = s3://bucket', 'o.secret_key = shh'), 'o.secret_key', 'use o.secret_key_file = PATH'],
    [cfg('[node]', 'password = hunter2'), 'password', 'use passphrase_file = PATH'],
    [cfg('[clients]', 'alice.secret = x'), 'alice.secret', 'use alice.secret_key_file = PATH'],
    [cfg(...JOB, 'b1.passphrase = x'), 'b1.passphrase', 'use b1.passphrase_file = PATH'],
    [cfg('token = abc', '[node]'), 'token', 'use token_file = PATH'],
  ];
  for (const [text, key, hint] of cases) {
    const p = oneProblem(text);
    assert.equal(p.key, key, text);
    assert.equal(p.found, null, 'a secret is never shown');
    assert.match(p.expected, /^secrets are referenced by file/);
    assert.ok(p.expected.includes(hint), p.expected);
    assert.ok(!formatProblem(p).includes('hunter2'));
  }
  // Also inside a misspelt section, beside the section's own problem.
  const { problems } = parse(cfg('[targts]', 'usb = local:/mnt', 'usb.passphrase = hunter2'));
  assert.deepEqual(
    problems.map((q) => [q.line, q.section, q.key]),
    [
      [1, null, null],
      [3, 'targts', 'usb.passphrase'],
    ],
  );
});

test('bad values name the line, section, key, value found and what is expected', () => {
  const cases: Array<[string, number, string, string, string, RegExp]> = [
    [cfg('[node]', 'web.port = 99999'), 2, 'node', 'web.port', '99999', /a port number .* between 0 and 65535/],
    [cfg('[node]', 'workers = 0'), 2, 'node', 'workers', '0', /between 1 and 64/],
    [cfg('[node]', 'workers = 2.5'), 2, 'node', 'workers', '2.5', /a whole number between 1 and 64/],
    [cfg('[node]', 'max_concurrent_jobs = many'), 2, 'node', 'max_concurrent_jobs', 'many', /between 1 and 64/],
    [cfg('[node]', 'log_level = loud'), 2, 'node', 'log_level', 'loud', /one of debug, info, warn, error/],
    [cfg('[node]', 'timezone = Mars/Olympus'), 2, 'node', 'timezone', 'Mars/Olympus', /an IANA time zone/],
    [cfg('[node]', 'bandwidth = fast'), 2, 'node', 'bandwidth', 'fast', /a rate such as 1MiB\/s, or a timetable/],
    [cfg('[node]', 'web.listen = not a host'), 2, 'node', 'web.listen', 'not a host', /an IP address or host name/],
    [cfg('[node]', 'web.hostnames = a/b'), 2, 'node', 'web.hostnames', 'a/b', /bad name "a\/b"/],
    [cfg('[storage]', 'reserved_space = plenty'), 2, 'storage', 'reserved_space', 'plenty', /a size such as/],
    [cfg('[storage]', 'stale_after = 0s'), 2, 'storage', 'stale_after', '0s', /more than zero/],
    [cfg('[storage]', 'max_object_size = 0'), 2, 'storage', 'max_object_size', '0', /more than 0/],
    [cfg('[clients]', 'alice.quota = lots'), 2, 'clients', 'alice.quota', 'lots', /a size such as .*, or none/],
    [cfg('[targets]', 'x = ftp://host'), 2, 'targets', 'x', 'ftp://host', /local:PATH, node:https:\/\/HOST:PORT or s3:\/\/BUCKET\/PREFIX/],
    [cfg('[targets]', 'x = local:'), 2, 'targets', 'x', 'local:', /local:PATH with a directory/],
    [cfg('[targets]', 'x = node:http://h:1', 'x.token_file = t'), 2, 'targets', 'x', 'node:http://h:1', /plain http:\/\/ only with ALIAS.plain_http = true/],
    [cfg('[targets]', 'x = node:https://u:pw@h:1', 'x.token_file = t', 'x.plain_http = yes'), 2, 'targets', 'x', 'node:https://u:pw@h:1', /without credentials/],
    [cfg('[targets]', 'x = s3://KEY:SECRET@bucket'), 2, 'targets', 'x', 's3://KEY:SECRET@bucket', /without credentials/],
    [cfg('[targets]', 'x = s3://B'), 2, 'targets', 'x', 's3://B', /bucket name of 3-63 lowercase/],
    [cfg('[targets]', 'x = node:https://h:1', 'x.token_file = t', 'x.fingerprint = abc'), 4, 'targets', 'x.fingerprint', 'abc', /64 hex digits/],
    [cfg('[targets]', 'x = s3://bucket', 'x.endpoint = s3.example.com'), 3, 'targets', 'x.endpoint', 's3.example.com', /an endpoint URL/],
    [cfg('[targets]', 'x = s3://bucket', 'x.storage_class = cheap'), 3, 'targets', 'x.storage_class', 'cheap', /STANDARD_IA/],
    [cfg('[targets]', 'x = local:r', 'x.budget = 20GiB'), 3, 'targets', 'x.budget', '20GiB', /20GiB\/night/],
    [cfg(...JOB, 'b1.frequency = 3 dayz'), 6, 'backups', 'b1.frequency', '3 dayz', /a duration such as 30s, 10m, 36h, 2d, 1week/],
    [cfg(...JOB, 'b1.schedule = 61 * * * *'), 6, 'backups', 'b1.schedule', '61 * * * *', /a cron expression .* \(CronPattern: Invalid value for minute: 61\)/],
    [cfg(...JOB, 'b1.allowed_times = 0000-0000'), 6, 'backups', 'b1.allowed_times', '0000-0000', /window "0000-0000" never opens/],
    [cfg(...JOB, 'b1.allowed_times = 2500-0800'), 6, 'backups', 'b1.allowed_times', '2500-0800', /invalid hour "25" in "2500-0800", must be between 0 and 24/],
    [cfg(...JOB, 'b1.timezone = Nowhere'), 6, 'backups', 'b1.timezone', 'Nowhere', /an IANA time zone/],
    [cfg(...JOB, 'b1.read_bandwidth = 0MiB/s'), 6, 'backups', 'b1.read_bandwidth', '0MiB/s', /more than 0/],
    [cfg(...JOB, 'b1.keep = forever'), 6, 'backups', 'b1.keep', 'forever', /a retention policy .*, or none/],
    [cfg(...JOB, 'b1.max_file_size = big'), 6, 'backups', 'b1.max_file_size', 'big', /a size such as/],
    [cfg(...JOB, 'b1.min_file_age = 10'), 6, 'backups', 'b1.min_file_age', '10', /a duration/],
    [cfg(...JOB, 'b1.one_file_system = sure'), 6, 'backups', 'b1.one_file_system', 'sure', /true or false/],
    [cfg(...JOB, 'b1.hook_timeout = 0m'), 6, 'backups', 'b1.hook_timeout', '0m', /more than zero/],
    [cfg(...JOB, 'b1.verify_frequency = weekly'), 6, 'backups', 'b1.verify_frequency', 'weekly', /a duration/],
    [cfg(...JOB, 'b1.verify_read_data = 10'), 6, 'backups', 'b1.verify_read_data', '10', /a percentage between 0% and 100%/],
    [cfg(...JOB, 'b1.verify_read_data = 120%'), 6, 'backups', 'b1.verify_read_data', '120%', /a percentage/],
    [cfg(...JOB, 'b1.prune_frequency = 1 fortnight'), 6, 'backups', 'b1.prune_frequency', '1 fortnight', /unknown unit "fortnight"/],
    [cfg(...JOB, 'b1.alert_after = soon'), 6, 'backups', 'b1.alert_after', 'soon', /a duration/],
    [cfg(...JOB, 'b1.on_window_close = stop'), 6, 'backups', 'b1.on_window_close', 'stop', /one of suspend, finish_file, finish_job/],
    [cfg(...JOB, 'b1.max_delete_ratio = 2'), 6, 'backups', 'b1.max_delete_ratio', '2', /a share such as 50% or 0.5/],
    [cfg(...JOB, 'b1.enabled = sometimes'), 6, 'backups', 'b1.enabled', 'sometimes', /true or false/],
    [cfg(...JOB, 'b1.budget = 1GiB/year'), 6, 'backups', 'b1.budget', '1GiB/year', /unknown period "year"/],
    [cfg(...JOB, 'b1.pre_command = none'.replace('none', '')), 6, 'backups', 'b1.pre_command', '', /a shell command/],
    [cfg(...JOB.slice(0, 4), 'b1.target = local:bad name'), 5, 'backups', 'b1.target', 'local:bad name', /ALIAS or ALIAS:NAME/],
  ];
  for (const [text, line, section, key, found, expected] of cases) {
    const p = oneProblem(text);
    assert.deepEqual([p.file, p.line, p.section, p.key, p.found], [FILE, line, section, key, found], text);
    assert.match(p.expected, expected, text);
  }
});

test('job-level problems: missing source or target, undefined alias, both frequency and schedule', () => {
  let p = oneProblem(cfg('[targets]', 'local = local:r', '[backups]', 'b1.target = local', 'b1.frequency = 1d'));
  assert.deepEqual([p.line, p.key, p.found], [4, 'b1.source', null]);
  assert.match(p.expected, /^missing: every job needs b1.source = PATH/);

  p = oneProblem(cfg('[backups]', 'b1.source = /data'));
  assert.deepEqual([p.line, p.key], [2, 'b1.target']);
  assert.match(p.expected, /^missing: every job needs b1.target = ALIAS/);

  p = oneProblem(cfg(...JOB.slice(0, 4), 'b1.target = locl'));
  assert.deepEqual([p.line, p.key, p.found], [5, 'b1.target', 'locl']);
  assert.equal(p.expected, 'a target alias defined in [targets] (defined: local); did you mean "local"?');

  // Names of Object.prototype members are not targets.
  assert.equal(oneProblem(cfg(...JOB.slice(0, 4), 'b1.target = constructor')).key, 'b1.target');
  const odd = valid(cfg('[targets]', 'toString = local:r', '[backups]', 'constructor.source = /d', 'constructor.target = toString'));
  const oddName: string = 'constructor';
  assert.equal(odd.jobs[oddName]?.target.alias, 'toString');

  p = oneProblem(cfg('[backups]', 'b1.source = /data', 'b1.target = nas:photos'));
  assert.equal(p.expected, 'a target alias defined in [targets] (none is defined)');

  p = oneProblem(cfg(...JOB, 'b1.frequency = 1d', 'b1.schedule = @daily'));
  assert.deepEqual([p.line, p.key], [7, 'b1.schedule']);
  assert.match(p.expected, /both b1.frequency and b1.schedule are set/);
});

test('defaults: a bad or undefined default is reported once, not once per job', () => {
  const { problems } = parse(cfg('[targets]', 'local = local:r', '[backups]', 'defaults.target = nas', 'defaults.frequency = 1 dayz', 'b1.source = /a', 'b2.source = /b'));
  assert.deepEqual(
    problems.map((p) => [p.line, p.key]),
    [
      [4, 'defaults.target'],
      [5, 'defaults.frequency'],
    ],
  );
  const both = oneProblem(cfg(...JOB, 'defaults.frequency = 1d', 'defaults.schedule = @daily', 'b2.source = /b', 'b2.target = local'));
  assert.deepEqual([both.line, both.key], [7, 'defaults.schedule']);
  const src = oneProblem(cfg(...JOB, 'defaults.source = /x'));
  assert.match(src.expected, /source cannot be a default/);
  // A job's own frequency wins over a default schedule, and the reverse.
  const config = valid(cfg(...JOB, 'defaults.schedule = @daily', 'b1.frequency = 2h', 'b2.source = /b', 'b2.target = local'));
  assert.deepEqual([config.jobs.b1?.frequencyMs, config.jobs.b1?.schedule], [2 * 3600 * 1000, null]);
  assert.deepEqual([config.jobs.b2?.frequencyMs, config.jobs.b2?.schedule], [null, '@daily']);
});

test('a source inside its own local target is refused; the reverse is allowed', () => {
  const p = oneProblem(cfg('[targets]', 'local = local:repository', '[backups]', 'b1.source = repository/data', 'b1.target = local'));
  assert.deepEqual([p.line, p.key, p.found], [4, 'b1.source', 'repository/data']);
  assert.match(p.expected, /inside the repository directory of target local \(\/srv\/nightjar\/repository\)/);
  assert.equal(oneProblem(cfg('[targets]', 'usb = local:/mnt/usb/', '[backups]', 'b1.source = /mnt/usb', 'b1.target = usb')).line, 4);
  valid(cfg('[targets]', 'local = local:repository', '[backups]', 'b1.source = /srv', 'b1.target = local'));
  valid(cfg('[targets]', 'local = local:repository', '[backups]', 'b1.source = repository2', 'b1.target = local'));
});

test('job names: a pattern, case-insensitively unique, and defaults is not a job', () => {
  let p = oneProblem(cfg(...JOB, 'B1.source = /x', 'B1.target = local'));
  assert.deepEqual([p.line, p.key, p.found], [6, 'B1.source', 'B1']);
  assert.match(p.expected, /two jobs with the same name/);
  assert.match(p.expected, /"b1" \(line 4\)/);

  p = oneProblem(cfg(...JOB, '-x.source = /x'));
  assert.deepEqual([p.line, p.found], [6, '-x']);
  assert.match(p.expected, /a job name: a name of letters, digits/);

  assert.match(oneProblem(cfg(...JOB, 'source = /x')).expected, /JOB.KEY or defaults.KEY/);
  const config = valid(cfg(...JOB, 'defaults.enabled = true', 'Photos_2024.source = /p', 'Photos_2024.target = local'));
  assert.deepEqual(Object.keys(config.jobs), ['b1', 'Photos_2024']);
});

test('target keys must fit the target kind, and node targets need a token and a fingerprint', () => {
  let p = oneProblem(cfg('[targets]', 'usb = local:/mnt/usb', 'usb.token_file = t'));
  assert.deepEqual([p.line, p.key, p.found], [3, 'usb.token_file', null]);
  assert.equal(p.expected, 'token_file applies only to node: targets, and usb is a local: target');
  p = oneProblem(cfg('[targets]', 'p = node:https://h:1', 'p.token_file = t', 'p.fingerprint = ' + 'a'.repeat(64), 'p.region = x'));
  assert.equal(p.expected, 'region applies only to s3: targets, and p is a node: target');

  const { problems } = parse(cfg('[targets]', 'p = node:https://h:7788'));
  assert.deepEqual(
    problems.map((q) => [q.line, q.key]),
    [
      [2, 'p.token_file'],
      [2, 'p.fingerprint'],
    ],
  );
  p = oneProblem(cfg('[targets]', 'o = s3://bucket', 'o.access_key_file = a'));
  assert.equal(p.key, 'o.secret_key_file');
  p = oneProblem(cfg('[targets]', 'usb.bandwidth = 1MiB/s'));
  assert.deepEqual([p.line, p.key], [2, 'usb']);
  assert.match(p.expected, /^missing: target usb has keys but no location/);
});

test('the status page must stay on loopback unless web.allow_remote is set', () => {
  const p = oneProblem(cfg('[node]', 'web.listen = 0.0.0.0'));
  assert.deepEqual([p.line, p.key, p.found], [2, 'web.listen', '0.0.0.0']);
  assert.match(p.expected, /set web.allow_remote = true/);
  valid(cfg('[node]', 'web.listen = ::1'));
  valid(cfg('[node]', 'web.listen = localhost'));
  valid(cfg('[node]', 'web.listen = 127.0.0.2'));
  valid(cfg('[node]', 'web.listen = 0.0.0.0', 'web.allow_remote = true'));
});

test('an unreadable exclude_file is a problem at its line', () => {
  const p = oneProblem(cfg(...JOB, 'b1.exclude_file = no-such-excludes.txt'));
  assert.deepEqual([p.line, p.key], [6, 'b1.exclude_file']);
  assert.match(p.expected, /a readable file of exclude patterns, one per line \(there is no such file: \/srv\/nightjar\/no-such-excludes.txt\)/);
});

test('every problem is collected at once, in line order', () => {
  const { config, problems } = parse(
    cfg(
      '[node]',
      'web.port = x',
      'colour = blue',
      '[storage]',
      'port = y',
      '[targets]',
      'local = nowhere',
      '[backups]',
      'b1.source = /a',
      'b1.target = local',
      'b1.frequency = often',
      'b2.target = local',
    ),
  );
  assert.equal(config, null);
  assert.deepEqual(
    problems.map((p) => [p.line, p.key]),
    [
      [2, 'web.port'],
      [3, 'colour'],
      [5, 'port'],
      [7, 'local'],
      [11, 'b1.frequency'],
      [12, 'b2.source'],
    ],
  );
});

test('the five-mistakes fixture yields exactly its five problems', () => {
  const file = join(fixtures, 'five-mistakes.cfg');
  const { config, problems } = parseConfig(readFileSync(file, 'utf8'), { file, nodeDir: '/srv/nightjar' });
  assert.equal(config, null);
  assert.deepEqual(
    problems.map((p) => [p.line, p.section, p.key]),
    [
      [6, 'node', 'web.prot'],
      [11, 'targets', 'local.passphrase'],
      [17, 'backups', 'b1.frequency'],
      [19, 'backups', 'b1.allowed_times'],
      [23, 'backups', 'b2.target'],
    ],
  );
  assert.match(problems[0]!.expected, /did you mean "web.port"\?/);
  assert.match(problems[1]!.expected, /secrets are referenced by file/);
  assert.match(problems[2]!.expected, /a duration/);
  assert.match(problems[3]!.expected, /never opens/);
  assert.match(problems[4]!.expected, /a target alias defined in \[targets\]/);
});

test('formatProblem writes file:line: [section] key: found …, expected …', () => {
  assert.equal(
    formatProblem({ file: '/x/node.cfg', line: 12, section: 'backups', key: 'b1.frequency', found: '3 dayz', expected: 'a duration such as 30s, 10m, 36h, 2d, 1week' }),
    '/x/node.cfg:12: [backups] b1.frequency: found "3 dayz", expected a duration such as 30s, 10m, 36h, 2d, 1week',
  );
  assert.equal(
    formatProblem({ file: '/x/node.cfg', line: 3, section: 'node', key: 'web.prot', found: null, expected: 'unknown key in [node]; did you mean "web.port"?' }),
    '/x/node.cfg:3: [node] web.prot: unknown key in [node]; did you mean "web.port"?',
  );
  assert.equal(formatProblem({ file: '/x/node.cfg', line: null, section: null, key: null, found: null, expected: 'a node.cfg file' }), '/x/node.cfg: a node.cfg file');
});

test('the config and everything in it is deep-frozen', () => {
  const config = valid(cfg('[node]', 'web.hostnames = a, b', ...JOB, 'b1.allowed_times = mon-fri 2200-0600', 'b1.exclude = *.o'));
  const frozen = [
    config,
    config.node,
    config.node.webHostnames,
    config.targets,
    config.targets.local,
    config.jobs,
    config.jobs.b1,
    config.jobs.b1?.target,
    config.jobs.b1?.allowedTimes,
    config.jobs.b1?.allowedTimes.windows,
    config.jobs.b1?.allowedTimes.windows[0],
    config.jobs.b1?.allowedTimes.windows[0]?.days,
    config.jobs.b1?.exclude,
  ];
  for (const value of frozen) assert.ok(Object.isFrozen(value));
  assert.throws(() => {
    (config.node as { webPort: number }).webPort = 1;
  }, TypeError);
  assert.throws(() => {
    (config.jobs.b1!.exclude as string[]).push('x');
  }, TypeError);
  const { problems } = parse('[node]\nworkers = 0\n');
  assert.ok(Object.isFrozen(problems) && Object.isFrozen(problems[0]));
});

test('node.cfg.example parses clean, documents every key, and ends with [backups]', () => {
  const text = readFileSync(examplePath, 'utf8');
  const config = valid(text);
  assert.deepEqual(Object.keys(config.targets), ['local']);
  assert.equal(config.targets.local?.location, '/srv/nightjar/repository');
  assert.deepEqual(config.jobs, {});

  // Only section headers and the local target are active.
  const active = text.split('\n').filter((l) => l.trim() !== '' && !/^\s*[;#]/.test(l));
  assert.deepEqual(active, ['[node]', '[storage]', '[clients]', '[targets]', 'local = local:repository', '[backups]']);
  assert.deepEqual(
    active.filter((l) => l.startsWith('[')),
    SECTIONS.map((s) => `[${s}]`),
  );

  const documented = (pattern: string) => new RegExp(`^; ${pattern.replace(/\./g, '\\.')} = `, 'm').test(text);
  for (const key of NODE_KEYS) assert.ok(documented(key), `[node] ${key}`);
  for (const key of STORAGE_KEYS) assert.ok(documented(key), `[storage] ${key}`);
  for (const key of CLIENT_KEYS) assert.ok(documented(`alice.${key}`), `[clients] ${key}`);
  for (const key of TARGET_KEYS) assert.ok(/^; [a-z]+\./m.test(text) && new RegExp(`^; [a-z]+\\.${key} = `, 'm').test(text), `[targets] ${key}`);
  for (const key of JOB_KEYS.filter((k) => k !== 'source')) assert.ok(documented(`defaults.${key}`), `[backups] ${key}`);
  assert.ok(documented('b1.source'));

  // create-node appends job lines at the end; they must land in [backups].
  const appended = valid(`${text}b1.source = /home/me/Photos\nb1.target = local\nb1.frequency = 1d\n`);
  assert.equal(appended.jobs.b1?.source, '/home/me/Photos');
  assert.equal(appended.jobs.b1?.frequencyMs, D);
});

test('node.cfg.example with every setting uncommented is valid but for its frequency/schedule pair', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nightjar-example-'));
  try {
    writeFileSync(join(dir, 'excludes.txt'), '*.o\n');
    const text = readFileSync(examplePath, 'utf8').replace(/^; /gm, '');
    const { problems } = parseConfig(text, { file: examplePath, nodeDir: dir });
    assert.deepEqual(
      problems.map((p) => p.key),
      ['defaults.schedule'],
      problems.map(formatProblem).join('\n'),
    );
    const withoutSchedule = text.replace(/^defaults\.schedule = .*$/m, '');
    const config = valid(withoutSchedule, dir);
    assert.deepEqual(Object.keys(config.targets).sort(), ['local', 'office', 'parents', 'usb']);
    assert.equal(config.jobs.b1?.target.alias, 'parents');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadConfig resolves to a config, or rejects with a ConfigError listing every problem', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nightjar-load-'));
  try {
    const good = join(dir, 'node.cfg');
    writeFileSync(good, cfg(...JOB));
    const config = await loadConfig(good, dir);
    assert.equal(config.file, good);
    assert.equal(config.targets.local?.location, join(dir, 'repository'));

    const fixture = join(fixtures, 'five-mistakes.cfg');
    const err = await loadConfig(fixture, dir).then(
      () => assert.fail('five mistakes must not load'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ConfigError);
    assert.equal(err.problems.length, 5);
    assert.deepEqual(err.message.split('\n'), err.problems.map(formatProblem));
    assert.ok(err.message.split('\n')[0]!.startsWith(`${fixture}:6: [node] web.prot: `));

    const missing = await loadConfig(join(dir, 'nope.cfg'), dir).then(
      () => assert.fail('a missing file must not load'),
      (e: unknown) => e,
    );
    assert.ok(missing instanceof ConfigError);
    assert.equal(missing.problems.length, 1);
    assert.equal(missing.problems[0]!.line, null);
    assert.equal(missing.message, `${join(dir, 'nope.cfg')}: a node.cfg file, but there is none (create a node with: nightjar create-node)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the system time zone: UTC from TZ or the /etc/localtime link without Intl, any other zone as Intl names it', () => {
  for (const name of UTC_ZONE_NAMES) assert.equal(new Intl.DateTimeFormat('en-US', { timeZone: name }).resolvedOptions().timeZone, 'UTC', name);
  const intl = Intl.DateTimeFormat().resolvedOptions().timeZone;
  assert.equal(systemTimezone(), intl);
  assert.equal(systemTimezone({ TZ: ':Etc/UTC' }, '/nonexistent'), 'UTC');
  assert.equal(systemTimezone({ TZ: 'Europe/Berlin' }, '/nonexistent'), intl); // TZ not UTC: the process's own zone, from Intl
  const dir = mkdtempSync(join(tmpdir(), 'nj-tz-'));
  try {
    symlinkSync('/usr/share/zoneinfo/Etc/UTC', join(dir, 'utc'));
    symlinkSync('/usr/share/zoneinfo/Asia/Kolkata', join(dir, 'kolkata'));
    assert.equal(systemTimezone({}, join(dir, 'utc')), 'UTC');
    assert.equal(systemTimezone({}, join(dir, 'kolkata')), intl);
    assert.equal(systemTimezone({}, join(dir, 'missing')), intl);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
