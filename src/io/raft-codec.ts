// Maps the core's Message union (src/raft/types.ts) to proto/raft.proto's RaftMessage and
// back. Encoding hands protobufjs plain objects shaped like the proto (numbers for
// uint64, numbers for enums), which it encodes without a fromObject copy. Decoding reads
// protobufjs's decoded instances directly: uint64 fields may arrive as Long, and absent
// fields read as the prototype's defaults, so every number goes through `num`.
//
// A decoded message that does not make sense (no body, an unknown entry kind, a
// number past 2^53) throws: the transport then drops the batch and logs it, because a
// malformed peer message must never reach the core.
import type {
  ClusterConfig,
  Entry,
  EntryKind,
  Message,
  SnapshotMeta,
  VoterKey,
} from '../raft/types.ts';
import type { RaftWireCodec, WireMessage } from './raft-transport.ts';

const KIND_TO_WIRE: Record<EntryKind, number> = { normal: 0, config: 1, noop: 2 };
const WIRE_TO_KIND: readonly EntryKind[] = ['normal', 'config', 'noop'];

type Wire = Record<string, unknown>;

function num(v: unknown, what: string): number {
  if (typeof v === 'number') return v;
  if (v !== null && typeof v === 'object' && 'toNumber' in v && typeof v.toNumber === 'function') {
    const n = (v as { toNumber(): number }).toNumber();
    if (!Number.isSafeInteger(n)) throw new Error(`${what} out of the safe integer range`);
    return n;
  }
  if (v === undefined || v === null) return 0;
  throw new Error(`${what} is not a number`);
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** The optional responder directory id; absent (old peers) stays absent. */
function voterDir(v: Record<string, unknown>): { voterDirectoryId?: string } {
  const d = v['voterDirectoryId'];
  return typeof d === 'string' && d !== '' ? { voterDirectoryId: d } : {};
}

function bytes(v: unknown): Uint8Array {
  return v instanceof Uint8Array ? v : new Uint8Array(0);
}

function obj(v: unknown, what: string): Wire {
  if (v === null || v === undefined || typeof v !== 'object') throw new Error(`${what} is missing`);
  return v as Wire;
}

function entryToWire(e: Entry): Wire {
  return { term: e.term, index: e.index, kind: KIND_TO_WIRE[e.kind], data: e.data };
}

function entryFromWire(w: Wire): Entry {
  const kind = WIRE_TO_KIND[num(w['kind'], 'entry kind')];
  if (kind === undefined) throw new Error(`unknown entry kind ${String(w['kind'])}`);
  return { term: num(w['term'], 'entry term'), index: num(w['index'], 'entry index'), kind, data: bytes(w['data']) };
}

function configToWire(c: ClusterConfig): Wire {
  return { voters: c.voters.map((v) => ({ nodeId: v.nodeId, directoryId: v.directoryId })), observers: [...c.observers] };
}

function configFromWire(w: Wire): ClusterConfig {
  const voters = ((w['voters'] as Wire[] | undefined) ?? []).map(
    (v): VoterKey => ({ nodeId: num(v['nodeId'], 'voter node id'), directoryId: str(v['directoryId']) }),
  );
  const observers = ((w['observers'] as unknown[] | undefined) ?? []).map((o) => num(o, 'observer'));
  return { voters, observers };
}

function metaToWire(m: SnapshotMeta): Wire {
  return { index: m.index, term: m.term, config: configToWire(m.config) };
}

function metaFromWire(w: Wire): SnapshotMeta {
  return {
    index: num(w['index'], 'snapshot index'),
    term: num(w['term'], 'snapshot term'),
    config: configFromWire(obj(w['config'], 'snapshot config')),
  };
}

export function messageToWire(m: Message): WireMessage {
  const base = { clusterId: m.clusterId, from: m.from, to: m.to, term: m.term };
  switch (m.type) {
    case 'preVote':
    case 'vote':
      return {
        ...base,
        vote: {
          preVote: m.type === 'preVote',
          lastLogIndex: m.lastLogIndex,
          lastLogTerm: m.lastLogTerm,
          candidateDirectoryId: m.candidateDirectoryId,
          voterDirectoryId: m.voterDirectoryId,
          leadershipTransfer: m.leadershipTransfer,
        },
      };
    case 'preVoteResponse':
    case 'voteResponse':
      return {
        ...base,
        voteResponse: { preVote: m.type === 'preVoteResponse', granted: m.granted, voterDirectoryId: m.voterDirectoryId },
      };
    case 'append':
      return {
        ...base,
        append: {
          prevLogIndex: m.prevLogIndex,
          prevLogTerm: m.prevLogTerm,
          entries: m.entries.map(entryToWire),
          leaderCommit: m.leaderCommit,
        },
      };
    case 'appendResponse':
      return {
        ...base,
        appendResponse: {
          success: m.success,
          matchIndex: m.matchIndex,
          rejectedIndex: m.rejectedIndex,
          conflictTerm: m.conflictTerm,
          conflictIndex: m.conflictIndex,
          voterDirectoryId: m.voterDirectoryId ?? '',
        },
      };
    case 'heartbeat':
      return { ...base, heartbeat: { commitIndex: m.commitIndex, readContext: m.readContext } };
    case 'heartbeatResponse':
      return { ...base, heartbeatResponse: { readContext: m.readContext, lastLogIndex: m.lastLogIndex, voterDirectoryId: m.voterDirectoryId ?? '' } };
    case 'installSnapshot':
      return {
        ...base,
        installSnapshot: {
          meta: metaToWire(m.meta),
          offset: m.offset,
          totalBytes: m.totalBytes,
          data: m.data,
          done: m.done,
        },
      };
    case 'installSnapshotResponse':
      return {
        ...base,
        installSnapshotResponse: { snapshotIndex: m.snapshotIndex, nextOffset: m.nextOffset, done: m.done, voterDirectoryId: m.voterDirectoryId ?? '' },
      };
    case 'timeoutNow':
      return { ...base, timeoutNow: {} };
    case 'readIndex':
      return { ...base, readIndex: { context: m.context } };
    case 'readIndexResponse':
      return { ...base, readIndexResponse: { context: m.context, index: m.index } };
  }
}

export function messageFromWire(w: WireMessage): Message {
  const base = {
    clusterId: str(w['clusterId']),
    from: num(w['from'], 'from'),
    to: num(w['to'], 'to'),
    term: num(w['term'], 'term'),
  };
  const body = w['body'];
  const b = (name: string): Wire => obj(w[name], name);
  switch (body) {
    case 'vote': {
      const v = b('vote');
      return {
        ...base,
        type: v['preVote'] === true ? 'preVote' : 'vote',
        lastLogIndex: num(v['lastLogIndex'], 'lastLogIndex'),
        lastLogTerm: num(v['lastLogTerm'], 'lastLogTerm'),
        candidateDirectoryId: str(v['candidateDirectoryId']),
        voterDirectoryId: str(v['voterDirectoryId']),
        leadershipTransfer: v['leadershipTransfer'] === true,
      };
    }
    case 'voteResponse': {
      const v = b('voteResponse');
      return {
        ...base,
        type: v['preVote'] === true ? 'preVoteResponse' : 'voteResponse',
        granted: v['granted'] === true,
        voterDirectoryId: str(v['voterDirectoryId']),
      };
    }
    case 'append': {
      const v = b('append');
      return {
        ...base,
        type: 'append',
        prevLogIndex: num(v['prevLogIndex'], 'prevLogIndex'),
        prevLogTerm: num(v['prevLogTerm'], 'prevLogTerm'),
        entries: ((v['entries'] as Wire[] | undefined) ?? []).map(entryFromWire),
        leaderCommit: num(v['leaderCommit'], 'leaderCommit'),
      };
    }
    case 'appendResponse': {
      const v = b('appendResponse');
      return {
        ...base,
        type: 'appendResponse',
        success: v['success'] === true,
        matchIndex: num(v['matchIndex'], 'matchIndex'),
        rejectedIndex: num(v['rejectedIndex'], 'rejectedIndex'),
        conflictTerm: num(v['conflictTerm'], 'conflictTerm'),
        conflictIndex: num(v['conflictIndex'], 'conflictIndex'),
        ...voterDir(v),
      };
    }
    case 'heartbeat': {
      const v = b('heartbeat');
      return {
        ...base,
        type: 'heartbeat',
        commitIndex: num(v['commitIndex'], 'commitIndex'),
        readContext: num(v['readContext'], 'readContext'),
      };
    }
    case 'heartbeatResponse': {
      const v = b('heartbeatResponse');
      return {
        ...base,
        type: 'heartbeatResponse',
        readContext: num(v['readContext'], 'readContext'),
        lastLogIndex: num(v['lastLogIndex'], 'lastLogIndex'),
        ...voterDir(v),
      };
    }
    case 'installSnapshot': {
      const v = b('installSnapshot');
      return {
        ...base,
        type: 'installSnapshot',
        meta: metaFromWire(obj(v['meta'], 'snapshot meta')),
        offset: num(v['offset'], 'offset'),
        totalBytes: num(v['totalBytes'], 'totalBytes'),
        data: bytes(v['data']),
        done: v['done'] === true,
      };
    }
    case 'installSnapshotResponse': {
      const v = b('installSnapshotResponse');
      return {
        ...base,
        type: 'installSnapshotResponse',
        snapshotIndex: num(v['snapshotIndex'], 'snapshotIndex'),
        nextOffset: num(v['nextOffset'], 'nextOffset'),
        done: v['done'] === true,
        ...voterDir(v),
      };
    }
    case 'timeoutNow':
      return { ...base, type: 'timeoutNow' };
    case 'readIndex':
      return { ...base, type: 'readIndex', context: str(b('readIndex')['context']) };
    case 'readIndexResponse': {
      const v = b('readIndexResponse');
      return { ...base, type: 'readIndexResponse', context: str(v['context']), index: num(v['index'], 'index') };
    }
    default:
      throw new Error(`raft message without a known body (${String(body)})`);
  }
}

export const raftMessageCodec: RaftWireCodec<Message> = { toWire: messageToWire, fromWire: messageFromWire };
