/**
 * Reads and validates node.cfg into one frozen NodeConfig (see ./types.ts and
 * node.cfg.example for every key).
 *
 * Values are decoded by the `ini` package (quotes, `;`/`#` comments, escapes). ini
 * loses line numbers, silently keeps the last of two equal keys, turns `true`/`false`
 * into booleans, `key[]` into arrays and `[a.b]` into nested sections, so a light scan of
 * the text runs beside it: it keeps each key's line, finds keys written twice and keys
 * outside any section, and refuses `key[]` and unknown (including dotted) sections.
 *
 * Validation never stops at the first problem: every problem in the file is collected,
 * each with file, line, section, key, the value found and what is expected.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { availableParallelism, homedir, hostname } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { Cron } from 'croner';
import ini from 'ini';
import {
  CLIENT_KEYS,
  closestMatch,
  DEFAULTS_NAME,
  INLINE_SECRET_KEYS,
  JOB_KEYS,
  type JobKey,
  NAME_EXPECTED,
  NAME_PATTERN,
  NODE_KEYS,
  SECTIONS,
  type SectionName,
  STORAGE_KEYS,
  TARGET_KEYS,
  TARGET_NODE_KEYS,
  TARGET_S3_KEYS,
} from './keys.js';
import type {
  Budget,
  ClientConfig,
  ConfigProblem,
  JobConfig,
  NodeConfig,
  NodeSection,
  OnWindowClose,
  RateTimetable,
  RetentionPolicy,
  StorageSection,
  TargetConfig,
  TargetKind,
  WindowSet,
} from './types.js';
import {
  parseBudget,
  parseDuration,
  parsePositiveDuration,
  parseRateTimetable,
  parseRetention,
  parseSize,
  parseWindowSet,
  UnitError,
} from './units.js';

/** node.cfg could not be used; `problems` lists everything wrong, `message` one per line. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'NIGHTJAR_CONFIG';
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.problems = problems;
  }
}

/**
 * One problem as a line for people:
 * `/x/node.cfg:12: [backups] b1.frequency: found "3 dayz", expected a duration such as …`.
 * Without a value (an unknown key, a missing key) the `expected` text stands alone.
 */
export function formatProblem(p: ConfigProblem): string {
  const where = p.line === null ? p.file : `${p.file}:${p.line}`;
  const what = [p.section === null ? null : `[${p.section}]`, p.key].filter((x) => x !== null).join(' ');
  const detail = p.found === null ? p.expected : `found ${JSON.stringify(p.found)}, expected ${p.expected}`;
  return what === '' ? `${where}: ${detail}` : `${where}: ${what}: ${detail}`;
}

export interface ParseConfigOptions {
  /** The file the text came from (for messages and `NodeConfig.file`); made absolute. */
  readonly file: string;
  /** Relative paths in values resolve against this directory. */
  readonly nodeDir: string;
}

export interface ParseConfigResult {
  /** The frozen configuration, or null when there is any problem. */
  readonly config: NodeConfig | null;
  readonly problems: readonly ConfigProblem[];
}

/**
 * Validates node.cfg text completely and returns either a deep-frozen config and no
 * problems, or null and every problem found. Synchronous; it touches the file system
 * only to read `exclude_file` pattern files. Never throws for bad input.
 */
export function parseConfig(text: string, opts: ParseConfigOptions): ParseConfigResult {
  const ctx = new Context(resolve(opts.file), resolve(opts.nodeDir));
  const sections = scan(text, ctx);
  const node = readNodeSection(sections.get('node') ?? [], ctx);
  const storage = readStorageSection(sections.get('storage') ?? [], ctx);
  const clients = readClients(sections.get('clients') ?? [], ctx);
  const targets = readTargets(sections.get('targets') ?? [], ctx);
  const jobs = readJobs(sections.get('backups') ?? [], targets, node, ctx);
  const problems = ctx.problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  if (problems.length > 0) return { config: null, problems: deepFreeze(problems) };
  const config: NodeConfig = {
    file: ctx.file,
    nodeDir: ctx.nodeDir,
    node,
    storage,
    clients,
    targets,
    jobs,
  };
  return { config: deepFreeze(config), problems: [] };
}

/**
 * Reads and validates the node.cfg at `file`. Resolves to the frozen config; rejects
 * with a ConfigError listing every problem (a missing or unreadable file is one problem).
 */
export async function loadConfig(file: string, nodeDir: string): Promise<NodeConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const expected =
      code === 'ENOENT'
        ? 'a node.cfg file, but there is none (create a node with: nightjar create-node)'
        : `a readable node.cfg (${(err as Error).message})`;
    throw new ConfigError([{ file: resolve(file), line: null, section: null, key: null, found: null, expected }]);
  }
  const { config, problems } = parseConfig(text, { file, nodeDir });
  if (config === null) throw new ConfigError(problems);
  return config;
}

// ------------------------------------------------------------------ scanning

/** One `key = value` line inside a known section. */
interface Entry {
  readonly section: SectionName;
  readonly key: string;
  readonly value: string;
  readonly line: number;
}

class Context {
  readonly problems: ConfigProblem[] = [];
  constructor(
    readonly file: string,
    readonly nodeDir: string,
  ) {}

  report(line: number | null, section: string | null, key: string | null, found: string | null, expected: string): void {
    this.problems.push({ file: this.file, line, section, key, found, expected });
  }

  /** Reports a bad value of `entry`. */
  reportValue(entry: Entry, expected: string): void {
    this.report(entry.line, entry.section, entry.key, entry.value, expected);
  }
}

/** ini's own line grammar: `[section]` or `key` with an optional `= value`. */
const INI_LINE = /^\[([^\]]*)\]\s*$|^([^=]+)(=(.*))?$/;

/**
 * Walks the text line by line as ini does, records every key of a known section with its
 * line and ini's decoded value, and reports what ini would silently accept: keys written
 * twice, keys outside a section, `key[]` arrays, lines that are not `key = value`,
 * unknown sections, and inline secrets.
 */
function scan(text: string, ctx: Context): Map<SectionName, Entry[]> {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const decoded = ini.parse(body) as Record<string, unknown>;
  const sections = new Map<SectionName, Entry[]>();
  const firstLine = new Map<string, number>();
  let section: SectionName | null = null;
  let inUnknownSection = false;
  /** The current section as written, known or not (for secrets found in unknown sections). */
  let sectionName: string | null = null;
  let reportedOutside = false;

  body.split(/\r\n|\r|\n/).forEach((raw, index) => {
    const line = index + 1;
    if (/^\s*([;#].*)?$/.test(raw)) return;
    const m = INI_LINE.exec(raw);
    if (m && m[1] !== undefined) {
      const name = ini.unsafe(m[1]);
      sectionName = name;
      if ((SECTIONS as readonly string[]).includes(name)) {
        section = name as SectionName;
        inUnknownSection = false;
        if (!sections.has(section)) sections.set(section, []);
      } else {
        section = null;
        inUnknownSection = true;
        const guess = closestMatch(name, SECTIONS) ?? (name.includes('.') ? name.split('.')[0] : null);
        const hint = guess !== null && (SECTIONS as readonly string[]).includes(guess) ? `; did you mean [${guess}]?` : '';
        ctx.report(line, null, null, `[${name}]`, `one of the sections ${SECTIONS.map((s) => `[${s}]`).join(', ')}${hint}`);
      }
      return;
    }
    if (!m || m[3] === undefined) {
      if (inUnknownSection) return; // its lines are not checked one by one: the section is reported
      ctx.report(line, section, null, raw.trim(), 'a line of the form KEY = VALUE, a [section] header, or a comment starting with ; or #');
      return;
    }
    const key = ini.unsafe(m[2]!);
    const secretKey = INLINE_SECRET_KEYS.get(key.slice(key.lastIndexOf('.') + 1));
    if (secretKey !== undefined) {
      // Checked in every section, even an unknown one; the value is never echoed.
      const fileKey = key.slice(0, key.lastIndexOf('.') + 1) + secretKey;
      ctx.report(line, sectionName, key, null, `secrets are referenced by file, never written in node.cfg: use ${fileKey} = PATH (a file under private/)`);
      return;
    }
    if (inUnknownSection) return;
    if (section === null) {
      if (!reportedOutside) {
        ctx.report(line, null, key, null, `a [section] header first: every key belongs to one of ${SECTIONS.map((s) => `[${s}]`).join(', ')}`);
      }
      reportedOutside = true;
      return;
    }
    if (key.endsWith('[]')) {
      ctx.report(line, section, key, null, `KEY = VALUE; ini arrays (KEY[]) are not used in node.cfg, write a comma-separated list instead`);
      return;
    }
    const seenAt = firstLine.get(`${section}\n${key}`);
    if (seenAt !== undefined) {
      ctx.report(line, section, key, null, `each key once, but ${key} is written twice (lines ${seenAt} and ${line}); keep one`);
      return;
    }
    firstLine.set(`${section}\n${key}`, line);
    sections.get(section)!.push({ section, key, value: decodedValue(decoded, section, key, m[4] ?? ''), line });
  });
  return sections;
}

/**
 * The value ini decoded for `section.key`, as a string: ini turns `true`, `false`,
 * `null` and single-quoted JSON (`'4000'`) into JSON values, which are turned back into
 * text. Should ini have produced an object (a dotted section nested over the key, or
 * `'[1,2]'`), the line is decoded with ini's own `unsafe`.
 */
function decodedValue(decoded: Record<string, unknown>, section: string, key: string, rawValue: string): string {
  const inSection = decoded[section];
  const value = typeof inSection === 'object' && inSection !== null ? (inSection as Record<string, unknown>)[key] : undefined;
  if (typeof value === 'string') return value;
  // ini JSON-parses single-quoted values too: '4000' arrives as a number.
  if (typeof value === 'boolean' || typeof value === 'number' || value === null) return String(value);
  return ini.unsafe(rawValue);
}

// ------------------------------------------------------------------ value readers

/** A value reader: returns the parsed value or throws UnitError saying what is expected. */
type Reader<T> = (raw: string) => T;

const BOOLEAN_WORDS: ReadonlyMap<string, boolean> = new Map([
  ['true', true],
  ['yes', true],
  ['on', true],
  ['1', true],
  ['false', false],
  ['no', false],
  ['off', false],
  ['0', false],
]);

const readBoolean: Reader<boolean> = (raw) => {
  const value = BOOLEAN_WORDS.get(raw.trim().toLowerCase());
  if (value === undefined) throw new UnitError('true or false (also yes/no, on/off, 1/0)');
  return value;
};

function readInteger(min: number, max: number, what = 'a whole number'): Reader<number> {
  return (raw) => {
    const text = raw.trim();
    if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
      throw new UnitError(`${what} between ${min} and ${max}`);
    }
    return Number(text);
  };
}

const readPort = readInteger(0, 65535, 'a port number (0 picks a free port)');

function readEnum<T extends string>(values: readonly T[]): Reader<T> {
  return (raw) => {
    const text = raw.trim().toLowerCase();
    const found = values.find((v) => v === text);
    if (found === undefined) throw new UnitError(`one of ${values.join(', ')}`);
    return found;
  };
}

function readNonEmpty(what: string): Reader<string> {
  return (raw) => {
    const text = raw.trim();
    if (text === '' || /[\0-\x1f]/.test(text)) throw new UnitError(what);
    return text;
  };
}

/** Words that switch an optional setting off. */
const NONE_WORDS = /^(none|off|never|unlimited)$/i;

/** Accepts `none`/`off`/`never`/`unlimited` as null, else defers to `reader`. */
function orNone<T>(reader: Reader<T>, expected: string): Reader<T | null> {
  return (raw) => {
    if (NONE_WORDS.test(raw.trim())) return null;
    try {
      return reader(raw);
    } catch (err) {
      if (err instanceof UnitError) throw new UnitError(`${err.message}, or none (${expected})`);
      throw err;
    }
  };
}

const readDurationOrNone = orNone(parsePositiveDuration, 'not set');
const readSizeOrNone = orNone(parseSize, 'no limit');
const readTimetableOrNone: Reader<RateTimetable | null> = (raw) => {
  const table = parseRateTimetable(raw);
  // A plain `off` is no timetable at all.
  return table.entries.every((e) => e.bytesPerSecond === null) ? null : table;
};
const readBudgetOrNone = orNone<Budget>(parseBudget, 'no budget');
const readRetentionOrNone = orNone<RetentionPolicy>(parseRetention, 'keep everything');
const readCommandOrNone = orNone(readNonEmpty('a shell command'), 'no command');

const readPositiveSize: Reader<number> = (raw) => {
  const bytes = parseSize(raw);
  if (bytes <= 0) throw new UnitError('a size such as 256MiB, more than 0');
  return bytes;
};

/** `10%` → 10 (0–100). */
const readPercent: Reader<number> = (raw) => {
  const m = /^(\d+(?:\.\d+)?)\s*%$/.exec(raw.trim());
  if (!m || Number(m[1]) > 100) throw new UnitError('a percentage between 0% and 100%, such as 10%');
  return Number(m[1]);
};

/** `50%` or `0.5` → 0.5 (0–1). */
const readRatio: Reader<number> = (raw) => {
  const text = raw.trim();
  if (text.endsWith('%')) return readPercent(text) / 100;
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) > 1) {
    throw new UnitError('a share such as 50% or 0.5 (between 0 and 1)');
  }
  return Number(text);
};

const readTimezone: Reader<string> = (raw) => {
  const text = raw.trim();
  let canonical: string;
  try {
    if (text === '') throw new RangeError('empty');
    canonical = new Intl.DateTimeFormat('en-US', { timeZone: text }).resolvedOptions().timeZone;
  } catch {
    throw new UnitError('an IANA time zone such as Europe/Berlin, America/New_York or UTC');
  }
  // Keep the name as written unless only its case differs (europe/berlin → Europe/Berlin).
  return canonical.toLowerCase() === text.toLowerCase() ? canonical : text;
};

const readCron: Reader<string> = (raw) => {
  const text = raw.trim();
  try {
    new Cron(text, { paused: true });
  } catch (err) {
    throw new UnitError(`a cron expression such as "0 3 * * *" (03:00 daily) or "@weekly" (${(err as Error).message})`);
  }
  return text;
};

/** A host name or IP address to listen on (`[::1]` brackets allowed). */
const readListenAddress: Reader<string> = (raw) => {
  const text = raw.trim().replace(/^\[(.*)\]$/, '$1');
  if (isIP(text) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(text)) {
    throw new UnitError('an IP address or host name to listen on, such as 127.0.0.1, ::1 or 0.0.0.0');
  }
  return text;
};

const readHostnames: Reader<string[]> = (raw) => {
  const names = splitList(raw);
  for (const name of names) {
    if (!/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,252}))$/.test(name)) {
      throw new UnitError(`a comma-separated list of host names such as nightjar.home.arpa, 192.168.1.5 (bad name "${name}")`);
    }
  }
  return names;
};

function splitList(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** Expands `~` and `~/…`, then resolves a relative path against the node directory. */
function resolvePath(raw: string, nodeDir: string): string {
  const text = raw.trim();
  if (text === '~') return homedir();
  if (text.startsWith('~/')) return join(homedir(), text.slice(2));
  return resolve(nodeDir, text);
}

function pathReader(nodeDir: string): Reader<string> {
  return (raw) => {
    const text = raw.trim();
    if (text === '' || text.includes('\0')) throw new UnitError('a path, absolute or relative to the node directory');
    if (/^~[^/]/.test(text)) throw new UnitError('a path; ~user is not expanded, write ~/… or an absolute path');
    return resolvePath(text, nodeDir);
  };
}

function isLoopback(address: string): boolean {
  return address === 'localhost' || address === '::1' || /^127\.\d+\.\d+\.\d+$/.test(address);
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/**
 * Keys of one section (or one job / target / client), read through typed readers. A
 * bad value is reported and the fallback returned, so validation carries on.
 */
class Fields {
  constructor(
    private readonly ctx: Context,
    private readonly entries: ReadonlyMap<string, Entry>,
  ) {}

  has(key: string): boolean {
    return this.entries.has(key);
  }

  entry(key: string): Entry | undefined {
    return this.entries.get(key);
  }

  /** The parsed value; `undefined` when the key is absent or its value is bad. */
  read<T>(key: string, reader: Reader<T>): T | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    try {
      return reader(entry.value);
    } catch (err) {
      if (!(err instanceof UnitError)) throw err;
      this.ctx.reportValue(entry, err.message);
      return undefined;
    }
  }

  get<T>(key: string, reader: Reader<T>, fallback: T): T {
    const value = this.read(key, reader);
    return value === undefined ? fallback : value;
  }
}

/** Reports keys that are not in `known`, with a "did you mean" when one is close. */
function reportUnknownKey(ctx: Context, entry: Entry, shownKey: string, known: readonly string[], prefix: string): void {
  const guess = closestMatch(shownKey, known);
  const belongsElsewhere = FIXED_SECTION_KEYS.find(([section, keys]) => section !== entry.section && keys.includes(shownKey));
  let text = `unknown key in [${entry.section}]`;
  if (guess !== null) text += `; did you mean "${prefix}${guess}"?`;
  else if (belongsElsewhere) text += `; ${shownKey} belongs in [${belongsElsewhere[0]}]`;
  else if (known.length <= 12) text += `; known keys: ${known.map((k) => prefix + k).join(', ')}`;
  else text += '; see node.cfg.example for every key';
  ctx.report(entry.line, entry.section, entry.key, null, text);
}

const FIXED_SECTION_KEYS: ReadonlyArray<readonly [SectionName, readonly string[]]> = [
  ['node', NODE_KEYS],
  ['storage', STORAGE_KEYS],
];

function fixedFields(entries: readonly Entry[], known: readonly string[], ctx: Context): Fields {
  const map = new Map<string, Entry>();
  for (const entry of entries) {
    if (known.includes(entry.key)) map.set(entry.key, entry);
    else reportUnknownKey(ctx, entry, entry.key, known, '');
  }
  return new Fields(ctx, map);
}

/**
 * Groups `NAME.key` entries by NAME. Entries without a dot go to `bare` when the section
 * allows them (a target's URL), else they are reported with `bareExpected`.
 */
function groupByName(
  entries: readonly Entry[],
  ctx: Context,
  bareExpected: string | null,
): { groups: Map<string, Map<string, Entry>>; bare: Map<string, Entry> } {
  const groups = new Map<string, Map<string, Entry>>();
  const bare = new Map<string, Entry>();
  for (const entry of entries) {
    const dot = entry.key.indexOf('.');
    if (dot < 0) {
      if (bareExpected === null) bare.set(entry.key, entry);
      else ctx.report(entry.line, entry.section, entry.key, null, bareExpected);
      continue;
    }
    const name = entry.key.slice(0, dot);
    const key = entry.key.slice(dot + 1);
    if (!groups.has(name)) groups.set(name, new Map());
    groups.get(name)!.set(key, entry);
  }
  return { groups, bare };
}

/** Reports a name not matching NAME_PATTERN once (at its first line); true when valid. */
function checkName(name: string, first: Entry, ctx: Context, what: string): boolean {
  if (NAME_PATTERN.test(name)) return true;
  ctx.report(first.line, first.section, first.key, name, `${what} ${NAME_EXPECTED}`);
  return false;
}

function firstEntry(entries: ReadonlyMap<string, Entry>): Entry {
  return [...entries.values()].reduce((a, b) => (b.line < a.line ? b : a));
}

// ------------------------------------------------------------------ sections

const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
const ON_WINDOW_CLOSE: readonly OnWindowClose[] = ['suspend', 'finish_file', 'finish_job'];

/** Names ICU resolves to UTC (checked against Intl, see config.test.ts). */
export const UTC_ZONE_NAMES: ReadonlySet<string> = new Set(
  ['UTC', 'UCT', 'Universal', 'Zulu', 'GMT', 'GMT0', 'GMT+0', 'GMT-0', 'Greenwich'].flatMap((n) => [n, `Etc/${n}`]),
);

/**
 * The system's time zone as Intl names it. Intl's first use costs ~20 ms (ICU set-up),
 * so a UTC system (servers, containers) is recognised from TZ or the /etc/localtime link;
 * any other zone is left to Intl, whose names a link may not match (Asia/Kolkata is
 * Asia/Calcutta to ICU).
 */
export function systemTimezone(env: NodeJS.ProcessEnv = process.env, localtime = '/etc/localtime'): string {
  let name: string | undefined = env.TZ?.replace(/^:/, '');
  if (name === undefined) {
    try {
      name = /\/zoneinfo\/(.+)$/.exec(readlinkSync(localtime))?.[1];
    } catch {
      // not a link, or none: Intl knows
    }
  }
  if (name !== undefined && UTC_ZONE_NAMES.has(name)) return 'UTC';
  return Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC';
}

function readNodeSection(entries: readonly Entry[], ctx: Context): NodeSection {
  const f = fixedFields(entries, NODE_KEYS, ctx);
  const webListen = f.get('web.listen', readListenAddress, '127.0.0.1');
  const webAllowRemote = f.get('web.allow_remote', readBoolean, false);
  if (!isLoopback(webListen) && !webAllowRemote && f.has('web.listen')) {
    ctx.reportValue(
      f.entry('web.listen')!,
      'a loopback address such as 127.0.0.1: the status page is private; to serve it to other machines set web.allow_remote = true as well',
    );
  }
  return {
    nickname: f.get('nickname', readNonEmpty('a short name for this node, such as laptop'), hostname()),
    webListen,
    webPort: f.get('web.port', readPort, 3456),
    webAllowRemote,
    webHostnames: f.get('web.hostnames', readHostnames, []),
    bandwidth: f.get('bandwidth', readTimetableOrNone, null),
    workers: f.get('workers', readInteger(1, 64), Math.min(4, availableParallelism())),
    maxConcurrentJobs: f.get('max_concurrent_jobs', readInteger(1, 64), 1),
    logLevel: f.get('log_level', readEnum(LOG_LEVELS), 'info'),
    timezone: f.get('timezone', readTimezone, systemTimezone()),
  };
}

function readStorageSection(entries: readonly Entry[], ctx: Context): StorageSection {
  const f = fixedFields(entries, STORAGE_KEYS, ctx);
  return {
    enabled: f.get('enabled', readBoolean, false),
    listen: f.get('listen', readListenAddress, '0.0.0.0'),
    port: f.get('port', readPort, 7788),
    plainHttp: f.get('plain_http', readBoolean, false),
    path: f.get('path', pathReader(ctx.nodeDir), join(ctx.nodeDir, 'storage')),
    reservedSpace: f.get('reserved_space', parseSize, 1024 ** 3),
    staleAfterMs: f.get('stale_after', parsePositiveDuration, 3 * 24 * 3600 * 1000),
    maxObjectSize: f.get('max_object_size', readPositiveSize, 256 * 1024 ** 2),
  };
}

function readClients(entries: readonly Entry[], ctx: Context): Record<string, ClientConfig> {
  const { groups } = groupByName(entries, ctx, 'NAME.quota or NAME.append_only (a client name, a dot, a key)');
  const clients: Record<string, ClientConfig> = {};
  for (const [name, keys] of groups) {
    if (!checkName(name, firstEntry(keys), ctx, 'a client name:')) continue;
    for (const [key, entry] of keys) {
      if (!(CLIENT_KEYS as readonly string[]).includes(key)) reportUnknownKey(ctx, entry, key, CLIENT_KEYS, `${name}.`);
    }
    const f = new Fields(ctx, keys);
    clients[name] = {
      name,
      quota: f.get('quota', readSizeOrNone, null),
      appendOnly: f.get('append_only', readBoolean, true),
    };
  }
  return clients;
}

const TARGET_EXPECTED = 'local:PATH, node:https://HOST:PORT or s3://BUCKET/PREFIX';

interface ParsedTargetUrl {
  kind: TargetKind;
  location: string;
}

function parseTargetUrl(raw: string, plainHttp: boolean, nodeDir: string): ParsedTargetUrl {
  const text = raw.trim();
  if (text.startsWith('local:')) {
    const path = text.slice('local:'.length);
    if (path.trim() === '') throw new UnitError(`local:PATH with a directory (${TARGET_EXPECTED})`);
    return { kind: 'local', location: pathReader(nodeDir)(path) };
  }
  if (text.startsWith('node:')) {
    let url: URL;
    try {
      url = new URL(text.slice('node:'.length));
    } catch {
      throw new UnitError(`node:https://HOST:PORT, a peer's storage service (${TARGET_EXPECTED})`);
    }
    if (url.username !== '' || url.password !== '') {
      throw new UnitError('a URL without credentials: the token goes in ALIAS.token_file');
    }
    if (url.protocol === 'http:' && !plainHttp) {
      throw new UnitError('node:https://HOST:PORT; plain http:// only with ALIAS.plain_http = true');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new UnitError(`node:https://HOST:PORT (${TARGET_EXPECTED})`);
    }
    if (url.search !== '' || url.hash !== '') throw new UnitError('node:https://HOST:PORT without ?query or #fragment');
    return { kind: 'node', location: url.href.replace(/\/+$/, '') };
  }
  if (text.startsWith('s3:')) {
    const m = /^s3:\/\/([^/]*)(?:\/(.*))?$/.exec(text);
    if (!m) throw new UnitError(`s3://BUCKET/PREFIX (${TARGET_EXPECTED})`);
    const bucket = m[1]!;
    if (bucket.includes('@') || bucket.includes(':')) {
      throw new UnitError('s3://BUCKET/PREFIX without credentials: use ALIAS.access_key_file and ALIAS.secret_key_file');
    }
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
      throw new UnitError('s3://BUCKET/PREFIX with a bucket name of 3-63 lowercase letters, digits, dots and hyphens');
    }
    const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
    return { kind: 's3', location: prefix === '' ? bucket : `${bucket}/${prefix}` };
  }
  throw new UnitError(TARGET_EXPECTED);
}

/** s3 endpoint: an http(s) URL without credentials. */
const readEndpoint: Reader<string> = (raw) => {
  const text = raw.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UnitError('an endpoint URL such as https://s3.eu-central-003.backblazeb2.com or http://127.0.0.1:9000');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UnitError('an http:// or https:// endpoint URL');
  if (url.username !== '' || url.password !== '') {
    throw new UnitError('an endpoint URL without credentials: use access_key_file and secret_key_file');
  }
  return text.replace(/\/+$/, '');
};

/** SHA-256 fingerprint: 64 hex digits, colons allowed; stored as lowercase hex. */
const readFingerprint: Reader<string> = (raw) => {
  const hex = raw.trim().replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new UnitError("the peer's SHA-256 certificate fingerprint: 64 hex digits, colons allowed (nightjar add-client prints it)");
  }
  return hex;
};

const readRegion = readNonEmpty('a region such as us-east-1');
const readStorageClass: Reader<string> = (raw) => {
  const text = raw.trim();
  if (!/^[A-Z][A-Z0-9_]*$/.test(text)) throw new UnitError('a storage class such as STANDARD, STANDARD_IA or GLACIER_IR');
  return text;
};

function readTargets(entries: readonly Entry[], ctx: Context): Record<string, TargetConfig> {
  const { groups, bare } = groupByName(entries, ctx, null);
  const targets: Record<string, TargetConfig> = {};
  const aliases = new Set([...bare.keys(), ...groups.keys()]);
  const readPath = pathReader(ctx.nodeDir);
  for (const alias of aliases) {
    const urlEntry = bare.get(alias);
    const keys = groups.get(alias) ?? new Map<string, Entry>();
    const first = urlEntry ?? firstEntry(keys);
    if (!checkName(alias, first, ctx, 'a target alias:')) continue;
    for (const [key, entry] of keys) {
      if (!(TARGET_KEYS as readonly string[]).includes(key)) reportUnknownKey(ctx, entry, key, TARGET_KEYS, `${alias}.`);
    }
    const f = new Fields(ctx, keys);
    if (urlEntry === undefined) {
      ctx.report(first.line, 'targets', alias, null, `missing: target ${alias} has keys but no location; add ${alias} = ${TARGET_EXPECTED}`);
      continue;
    }
    const plainHttp = f.get('plain_http', readBoolean, false);
    let parsed: ParsedTargetUrl | null = null;
    try {
      parsed = parseTargetUrl(urlEntry.value, plainHttp, ctx.nodeDir);
    } catch (err) {
      if (!(err instanceof UnitError)) throw err;
      ctx.reportValue(urlEntry, err.message);
    }
    const kind = parsed?.kind;
    if (kind !== undefined) {
      for (const [key, entry] of keys) {
        const onlyFor = (TARGET_NODE_KEYS as readonly string[]).includes(key)
          ? 'node'
          : (TARGET_S3_KEYS as readonly string[]).includes(key)
            ? 's3'
            : null;
        if (onlyFor !== null && onlyFor !== kind) {
          ctx.report(entry.line, 'targets', entry.key, null, `${key} applies only to ${onlyFor}: targets, and ${alias} is a ${kind}: target`);
        }
      }
    }
    const tokenFile = f.get('token_file', readPath, null);
    const fingerprint = f.get('fingerprint', readFingerprint, null);
    if (kind === 'node') {
      if (!f.has('token_file')) {
        ctx.report(urlEntry.line, 'targets', `${alias}.token_file`, null, `missing: a node: target needs ${alias}.token_file = PATH, the file holding its client token`);
      }
      if (!f.has('fingerprint') && !plainHttp) {
        ctx.report(
          urlEntry.line,
          'targets',
          `${alias}.fingerprint`,
          null,
          `missing: a node: target needs ${alias}.fingerprint = the peer's SHA-256 certificate fingerprint (nightjar add-client on the peer prints it), unless ${alias}.plain_http = true`,
        );
      }
    }
    const accessKeyFile = f.get('access_key_file', readPath, null);
    const secretKeyFile = f.get('secret_key_file', readPath, null);
    if (kind === 's3' && f.has('access_key_file') !== f.has('secret_key_file')) {
      const missing = f.has('access_key_file') ? 'secret_key_file' : 'access_key_file';
      ctx.report(urlEntry.line, 'targets', `${alias}.${missing}`, null, `missing: set both ${alias}.access_key_file and ${alias}.secret_key_file, or neither (then the AWS_* environment variables are used)`);
    }
    targets[alias] = {
      alias,
      kind: kind ?? 'local',
      url: urlEntry.value.trim(),
      location: parsed?.location ?? '',
      passphraseFile: f.get('passphrase_file', readPath, join(ctx.nodeDir, 'private', 'passphrase')),
      bandwidth: f.get('bandwidth', readTimetableOrNone, null),
      budget: f.get('budget', readBudgetOrNone, null),
      tokenFile,
      fingerprint,
      endpoint: f.get('endpoint', readEndpoint, null),
      region: kind === 's3' ? f.get('region', readRegion, 'us-east-1') : null,
      pathStyle: f.get('path_style', readBoolean, false),
      accessKeyFile,
      secretKeyFile,
      storageClass: f.get('storage_class', readStorageClass, null),
    };
  }
  return targets;
}

// ------------------------------------------------------------------ jobs

const TARGET_REF = /^([A-Za-z0-9][A-Za-z0-9_-]{0,63})(?::([A-Za-z0-9][A-Za-z0-9_.-]{0,127}))?$/;

const readTargetRef: Reader<{ alias: string; name: string | null }> = (raw) => {
  const m = TARGET_REF.exec(raw.trim());
  if (!m) throw new UnitError('a target alias from [targets], optionally with a snapshot series name: ALIAS or ALIAS:NAME');
  return { alias: m[1]!, name: m[2] ?? null };
};

function readPatternFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'there is no such file' : (err as Error).message;
    throw new UnitError(`a readable file of exclude patterns, one per line (${reason}: ${path})`);
  }
  // Blank lines and `#` comments are dropped, as in .gitignore; everything else is a pattern.
  return text.split(/\r?\n/).filter((line) => line.trim() !== '' && !line.startsWith('#'));
}

/** Job keys that `defaults.` may not set: they make sense only per job. */
const JOB_ONLY_KEYS: readonly JobKey[] = ['source'];

function readJobs(
  entries: readonly Entry[],
  targets: Readonly<Record<string, TargetConfig>>,
  node: NodeSection,
  ctx: Context,
): Record<string, JobConfig> {
  const { groups } = groupByName(
    entries,
    ctx,
    'JOB.KEY or defaults.KEY, such as b1.source = /home/me/Photos (keys in [backups] start with the job name and a dot)',
  );
  const readPath = pathReader(ctx.nodeDir);
  const defaultsEntries = groups.get(DEFAULTS_NAME) ?? new Map<string, Entry>();
  for (const [key, entry] of defaultsEntries) {
    if (!(JOB_KEYS as readonly string[]).includes(key)) {
      reportUnknownKey(ctx, entry, key, JOB_KEYS, `${DEFAULTS_NAME}.`);
    } else if ((JOB_ONLY_KEYS as readonly string[]).includes(key)) {
      ctx.report(entry.line, 'backups', entry.key, null, `a per-job key (b1.${key} = …); ${key} cannot be a default`);
    }
  }
  // Defaults are parsed once, so a bad default is reported once and not for every job.
  const defaults = new Fields(ctx, defaultsEntries);
  const defaultValues = new Map<string, unknown>();
  const fromDefaults = <T>(key: JobKey, reader: Reader<T>): T | undefined => {
    if (!defaultValues.has(key)) defaultValues.set(key, defaults.read(key, reader));
    return defaultValues.get(key) as T | undefined;
  };

  reportBothFrequencyAndSchedule(defaults, DEFAULTS_NAME, ctx);

  const jobs: Record<string, JobConfig> = {};
  const namesByLowerCase = new Map<string, { name: string; line: number }>();
  for (const [name, keys] of groups) {
    if (name === DEFAULTS_NAME) continue;
    const first = firstEntry(keys);
    if (!checkName(name, first, ctx, 'a job name:')) continue;
    const sameName = namesByLowerCase.get(name.toLowerCase());
    if (sameName !== undefined) {
      ctx.report(first.line, 'backups', first.key, name, `a job name that differs from "${sameName.name}" (line ${sameName.line}) in more than letter case: two jobs with the same name`);
      continue;
    }
    namesByLowerCase.set(name.toLowerCase(), { name, line: first.line });
    for (const [key, entry] of keys) {
      if (!(JOB_KEYS as readonly string[]).includes(key)) reportUnknownKey(ctx, entry, key, JOB_KEYS, `${name}.`);
    }
    const own = new Fields(ctx, keys);
    /** The job's own value, else the default's, else `fallback`. */
    const value = <T>(key: JobKey, reader: Reader<T>, fallback: T): T => {
      if (own.has(key)) return own.get(key, reader, fallback);
      const inherited = fromDefaults(key, reader);
      return inherited === undefined ? fallback : inherited;
    };
    /** The entry a setting came from (the job's or the default's), for messages. */
    const entryOf = (key: JobKey): Entry | undefined => own.entry(key) ?? defaults.entry(key);

    const source = own.get('source', readPath, '');
    if (!own.has('source')) {
      ctx.report(first.line, 'backups', `${name}.source`, null, `missing: every job needs ${name}.source = PATH, the directory it backs up`);
    }

    const targetRef = value('target', readTargetRef, null);
    const targetEntry = entryOf('target');
    if (targetEntry === undefined) {
      ctx.report(first.line, 'backups', `${name}.target`, null, `missing: every job needs ${name}.target = ALIAS (a target from [targets], such as local) or a defaults.target`);
    } else if (targetRef !== null && !Object.hasOwn(targets, targetRef.alias) && !isReported(targetEntry, ctx)) {
      const known = Object.keys(targets);
      const guess = closestMatch(targetRef.alias, known);
      ctx.report(
        targetEntry.line,
        'backups',
        targetEntry.key,
        targetEntry.value,
        `a target alias defined in [targets]${known.length > 0 ? ` (defined: ${known.join(', ')})` : ' (none is defined)'}${guess ? `; did you mean "${guess}"?` : ''}`,
      );
    }
    const target = targetRef !== null && Object.hasOwn(targets, targetRef.alias) ? targets[targetRef.alias] : undefined;
    if (target?.kind === 'local' && source !== '' && target.location !== '' && isInside(source, target.location)) {
      ctx.reportValue(
        own.entry('source')!,
        `a source outside its own target: ${source} is inside the repository directory of target ${target.alias} (${target.location})`,
      );
    }

    // frequency and schedule: the job's own choice wins over the defaults' choice.
    const level = own.has('frequency') || own.has('schedule') ? own : defaults;
    let frequencyMs: number | null = null;
    let schedule: string | null = null;
    if (level.has('frequency') && level.has('schedule')) {
      if (level === own) reportBothFrequencyAndSchedule(own, name, ctx);
    } else if (level.has('schedule')) {
      schedule = level === own ? own.get('schedule', readCron, null) : (fromDefaults('schedule', readCron) ?? null);
    } else if (level.has('frequency')) {
      frequencyMs = level === own ? own.get('frequency', parsePositiveDuration, null) : (fromDefaults('frequency', parsePositiveDuration) ?? null);
    } else {
      frequencyMs = 24 * 3600 * 1000;
    }
    if (frequencyMs === null && schedule === null) frequencyMs = 24 * 3600 * 1000; // only after a reported problem

    const excludeFile = value('exclude_file', readPath, null);
    const fileEntry = entryOf('exclude_file');
    let filePatterns: string[] = [];
    if (excludeFile !== null && fileEntry !== undefined) {
      try {
        filePatterns = readPatternFile(excludeFile);
      } catch (err) {
        if (!(err instanceof UnitError)) throw err;
        if (!isReported(fileEntry, ctx)) ctx.reportValue(fileEntry, err.message);
      }
    }
    const exclude = [
      ...(fromDefaults('exclude', splitList) ?? []),
      ...own.get('exclude', splitList, []),
      ...filePatterns,
    ];

    jobs[name] = {
      name,
      source,
      target: { alias: targetRef?.alias ?? '', name: targetRef?.name ?? name },
      frequencyMs,
      schedule,
      allowedTimes: value<WindowSet>('allowed_times', parseWindowSet, { spec: 'always', windows: [] }),
      timezone: value('timezone', readTimezone, node.timezone),
      bandwidth: value('bandwidth', readTimetableOrNone, null),
      readBandwidth: value('read_bandwidth', readTimetableOrNone, null),
      budget: value('budget', readBudgetOrNone, null),
      exclude,
      excludeFile,
      maxFileSize: value('max_file_size', readSizeOrNone, null),
      minFileAgeMs: value('min_file_age', orNone(parseDuration, 'no minimum'), null),
      oneFileSystem: value('one_file_system', readBoolean, false),
      keep: value('keep', readRetentionOrNone, null),
      preCommand: value('pre_command', readCommandOrNone, null),
      postCommand: value('post_command', readCommandOrNone, null),
      onFailure: value('on_failure', readCommandOrNone, null),
      onOverdue: value('on_overdue', readCommandOrNone, null),
      hookTimeoutMs: value('hook_timeout', parsePositiveDuration, 10 * 60 * 1000),
      verifyFrequencyMs: value('verify_frequency', readDurationOrNone, null),
      verifyReadDataPercent: value('verify_read_data', readPercent, 10),
      pruneFrequencyMs: value('prune_frequency', readDurationOrNone, null),
      alertAfterMs: value('alert_after', orNone(parsePositiveDuration, 'automatic'), null),
      onWindowClose: value('on_window_close', readEnum(ON_WINDOW_CLOSE), 'suspend'),
      maxDeleteRatio: value('max_delete_ratio', readRatio, 0.5),
      enabled: value('enabled', readBoolean, true),
    };
  }
  return jobs;
}

/** A job (or the defaults) may set a frequency or a cron schedule, not both. */
function reportBothFrequencyAndSchedule(fields: Fields, name: string, ctx: Context): void {
  const frequency = fields.entry('frequency');
  const schedule = fields.entry('schedule');
  if (frequency === undefined || schedule === undefined) return;
  const later = frequency.line > schedule.line ? frequency : schedule;
  ctx.report(
    later.line,
    'backups',
    later.key,
    null,
    `both ${name}.frequency and ${name}.schedule are set; keep one (a frequency such as 1d, or a cron schedule)`,
  );
}

/** True when a problem was already reported at this entry (a shared default, a bad value). */
function isReported(entry: Entry, ctx: Context): boolean {
  return ctx.problems.some((p) => p.line === entry.line && p.key === entry.key);
}

// ------------------------------------------------------------------ freezing

/** Freezes an object graph in place and returns it, typed as read-only all the way down. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
