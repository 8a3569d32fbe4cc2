/** Errors of the repository layer, each with a stable `code`. */
export class RepoError extends Error {
  readonly code: string;
  constructor(message: string, code = 'NJ_REPO', opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = 'RepoError';
    this.code = code;
  }
}

/** No key object opens with the given passphrase. */
export class WrongPassphraseError extends RepoError {
  constructor(location: string) {
    super(`wrong passphrase: no key in ${location} opens with it (check the passphrase file in private/)`, 'NJ_REPO_WRONG_PASSPHRASE');
    this.name = 'WrongPassphraseError';
  }
}

/** The store has no repository (`config` is missing). */
export class RepoNotFoundError extends RepoError {
  constructor(location: string) {
    super(`no repository at ${location} (no config object); initialize it first`, 'NJ_REPO_NOT_FOUND');
    this.name = 'RepoNotFoundError';
  }
}

/** init on a store that already holds a repository. */
export class RepoExistsError extends RepoError {
  constructor(location: string) {
    super(`a repository already exists at ${location}`, 'NJ_REPO_EXISTS');
    this.name = 'RepoExistsError';
  }
}

/** Authentication failed: the object was changed or damaged. */
export class IntegrityError extends RepoError {
  constructor(what: string) {
    super(`integrity check failed: ${what} is damaged or was tampered with`, 'NJ_REPO_INTEGRITY');
    this.name = 'IntegrityError';
  }
}

/** A blob id that is not in the index. */
export class BlobNotFoundError extends RepoError {
  constructor(id: string) {
    super(`blob ${id} is not in the repository index`, 'NJ_REPO_BLOB_NOT_FOUND');
    this.name = 'BlobNotFoundError';
  }
}

/** findSnapshot found nothing, or an ambiguous prefix. */
export class SnapshotNotFoundError extends RepoError {
  constructor(message: string) {
    super(message, 'NJ_REPO_SNAPSHOT_NOT_FOUND');
    this.name = 'SnapshotNotFoundError';
  }
}

/** The repository is locked by another process in a conflicting mode. */
export class RepoLockedError extends RepoError {
  constructor(message: string) {
    super(message, 'NJ_REPO_LOCKED');
    this.name = 'RepoLockedError';
  }
}

/** The repository's format version is not supported by this build. */
export class UnsupportedFormatError extends RepoError {
  constructor(version: unknown) {
    super(`repository format version ${String(version)} is not supported (this build reads version 1)`, 'NJ_REPO_FORMAT');
    this.name = 'UnsupportedFormatError';
  }
}
