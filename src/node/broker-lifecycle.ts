// The broker side of KIP-631's lifecycle: register with the active controller (a new
// incarnation id per process, and the broker epoch of the last clean shutdown if the
// data directory records one [KIP-966]), heartbeat every broker.heartbeat.interval.ms, ask to be
// unfenced once caught up (its own registration replayed, its logs opened), report where
// the logs of its leaderless replicas end (for unclean elections), and on
// SIGTERM ask for a controlled shutdown and wait until the controller has moved every
// leadership away — bounded by controlled.shutdown.timeout.ms.
import { randomUuid } from '../common/ids.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import { errorByCode } from '../common/errors.ts';
import type { Endpoint } from '../metadata/records.ts';
import type { ControllerRpcHandler } from '../server/types.ts';
import type { LeaderlessReplica } from '../broker/types.ts';

export type BrokerState = 'registering' | 'fenced' | 'unfenced' | 'shuttingDown' | 'stopped';

export interface BrokerLifecycleOptions {
  brokerId: number;
  clusterId: string;
  endpoints: readonly Endpoint[];
  rack: string;
  controller: Pick<ControllerRpcHandler, 'brokerRegistration' | 'brokerHeartbeat'>;
  heartbeatIntervalMs: number;
  /** The broker epoch this data directory's last clean shutdown recorded, else -1 (see src/log/clean-shutdown.ts). */
  previousBrokerEpoch?: number;
  /** The metadata offset this broker has applied, or -1 while it is not caught up. */
  caughtUpOffset: (brokerEpoch: number) => number;
  /** Hosted replicas of partitions without a leader and their log ends, sent with every heartbeat. */
  leaderlessReplicas?: () => LeaderlessReplica[];
  logger: Logger;
  onStateChange?: (state: BrokerState) => void;
}

export class BrokerLifecycle {
  readonly incarnationId = randomUuid();
  private _brokerEpoch = -1;
  private _state: BrokerState = 'registering';
  private timer: NodeJS.Timeout | undefined;
  private inFlight = false;
  private wantShutDown = false;
  private shutdownWaiters: Array<() => void> = [];
  private readonly log: Logger;

  constructor(private readonly opts: BrokerLifecycleOptions) {
    this.log = componentLogger(opts.logger, 'broker-lifecycle', { brokerId: opts.brokerId });
  }

  get brokerEpoch(): number {
    return this._brokerEpoch;
  }

  get state(): BrokerState {
    return this._state;
  }

  private setState(s: BrokerState): void {
    if (s === this._state) return;
    this.log.info({ from: this._state, to: s, brokerEpoch: this._brokerEpoch }, 'broker state change');
    this._state = s;
    this.opts.onStateChange?.(s);
  }

  start(): void {
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this._state === 'stopped') return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.step(), ms);
  }

  private async step(): Promise<void> {
    if (this.inFlight || this._state === 'stopped') return;
    this.inFlight = true;
    let next = this.opts.heartbeatIntervalMs;
    try {
      if (this._brokerEpoch < 0) {
        const r = await this.opts.controller.brokerRegistration({
          brokerId: this.opts.brokerId,
          clusterId: this.opts.clusterId,
          incarnationId: this.incarnationId,
          listeners: this.opts.endpoints.map((e) => ({ name: e.name, host: e.host, port: e.port })),
          rack: this.opts.rack,
          previousBrokerEpoch: this.opts.previousBrokerEpoch ?? -1,
        });
        if (r.errorCode === 0) {
          this._brokerEpoch = r.brokerEpoch;
          this.log.info({ brokerEpoch: r.brokerEpoch, previousBrokerEpoch: this.opts.previousBrokerEpoch ?? -1 }, 'registered');
          this.setState('fenced');
          next = 0;
        } else {
          this.log.debug({ error: errorByCode(r.errorCode), message: r.errorMessage }, 'registration not accepted yet');
          next = Math.min(250, this.opts.heartbeatIntervalMs);
        }
      } else {
        const r = await this.opts.controller.brokerHeartbeat({
          brokerId: this.opts.brokerId,
          brokerEpoch: this._brokerEpoch,
          currentMetadataOffset: this.opts.caughtUpOffset(this._brokerEpoch),
          wantFence: false,
          wantShutDown: this.wantShutDown,
          leaderlessReplicas: this.opts.leaderlessReplicas?.() ?? [],
        });
        const err = errorByCode(r.errorCode);
        if (err === 'NONE') {
          if (r.shouldShutDown) {
            this.setState('stopped');
            for (const w of this.shutdownWaiters.splice(0)) w();
          } else if (!this.wantShutDown) this.setState(r.isFenced ? 'fenced' : 'unfenced');
        } else if (err === 'STALE_CONTROLLER_EPOCH' || err === 'STALE_BROKER_EPOCH' || err === 'BROKER_ID_NOT_REGISTERED' || err === 'DUPLICATE_BROKER_REGISTRATION' || err === 'INVALID_REQUEST') {
          // The controller no longer knows this registration (e.g. fenced and replaced): register again.
          this.log.warn({ error: err, message: r.errorMessage }, 'heartbeat refused; registering again');
          this._brokerEpoch = -1;
          this.setState('registering');
          next = 0;
        } else {
          // NOT_CONTROLLER and friends: the controller moved; retry soon.
          next = Math.min(100, this.opts.heartbeatIntervalMs);
        }
      }
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, 'controller unreachable; retrying');
      next = Math.min(100, this.opts.heartbeatIntervalMs);
    } finally {
      this.inFlight = false;
    }
    this.schedule(next);
  }

  /** Asks the controller to move this broker's leaderships away; resolves when done or after `timeoutMs`. */
  async controlledShutdown(timeoutMs: number): Promise<boolean> {
    if (this._state === 'stopped') return true;
    if (this._brokerEpoch < 0) return false;
    this.wantShutDown = true;
    this.setState('shuttingDown');
    const done = new Promise<boolean>((resolve) => this.shutdownWaiters.push(() => resolve(true)));
    this.schedule(0);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const ok = await Promise.race([done, timeout]);
    clearTimeout(timer);
    return ok;
  }

  stop(): void {
    this._state = 'stopped';
    clearTimeout(this.timer);
    for (const w of this.shutdownWaiters.splice(0)) w();
  }
}
