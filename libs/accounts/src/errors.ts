/** A backend's data dir or DB cannot be read: skip it for the round, never treat it as empty. */
export class BackendUnavailableError extends Error {
  readonly code = 'BACKEND_UNAVAILABLE';
  readonly backend: string;
  constructor(backend: string, reason: string, options?: ErrorOptions) {
    super(`backend ${backend}: ${reason}`, options);
    this.name = 'BackendUnavailableError';
    this.backend = backend;
  }
}

/** Another sync round holds the lock for longer than this round was willing to wait. */
export class AccountSyncBusyError extends Error {
  readonly code = 'ACCOUNT_SYNC_BUSY';
  constructor(message = 'another account sync round is running') {
    super(message);
    this.name = 'AccountSyncBusyError';
  }
}

/** This round's lock expired or was taken over: it must not write its results. */
export class AccountSyncLockLostError extends Error {
  readonly code = 'ACCOUNT_SYNC_LOCK_LOST';
  constructor(message = 'the account sync lock was lost during the round') {
    super(message);
    this.name = 'AccountSyncLockLostError';
  }
}

/** initBackendFrom refuses to overwrite a backend that already has accounts, or has another server key. */
export class BackendInitError extends Error {
  readonly code = 'BACKEND_INIT_REFUSED';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'BackendInitError';
  }
}

/** An apply that wrote nothing (its transaction rolled back, or the agent answered an error): not a lost answer. */
export class ApplyRefusedError extends Error {
  readonly code = 'APPLY_REFUSED';
  readonly refused = true;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ApplyRefusedError';
  }
}
