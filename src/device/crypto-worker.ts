/**
 * A crypto worker (see crypto-pool.ts): sleeps on the job table's LIMIT,
 * runs the AEAD of whatever jobs it can claim, in place in the shared slots,
 * and sleeps again. New memory regions arrive as messages on its port; it
 * reads them synchronously when a job names a region it does not know yet.
 * It says 'ready' on that port once, when its loop starts, and leaves its
 * kernel thread id in shared memory for the pool.
 */
import { readlinkSync } from 'node:fs';
import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { defaultPrimitives } from '../noise/default-backend.js';
import { TransportSlot } from '../noise/transport-slot.js';
import { CryptoJobTable, LIMIT, STOP, type CryptoJobMemory } from './crypto-jobs.js';

/** A shared memory region jobs' slots live in. */
export interface RegionMessage {
  region: number;
  buffer: SharedArrayBuffer;
}

export interface CryptoWorkerData {
  /** Distinct for every worker the pool ever started; the main thread is 0. */
  id: number;
  memory: CryptoJobMemory;
  regions: RegionMessage[];
  port: MessagePort;
  /** Checks of LIMIT before sleeping: a batch that follows soon needs no wake-up. */
  spinChecks: number;
  /** One Int32 where this worker puts its kernel thread id: the pool sees in /proc when the thread is gone. */
  thread: SharedArrayBuffer;
}

const data = workerData as CryptoWorkerData;
const table = new CryptoJobTable(data.memory);
const regions = new Map<number, Uint8Array>();
/** Slots by region and offset: ring slots are fixed, so this stays as small as the rings. */
const slots = new Map<number, Map<number, TransportSlot>>();

function addRegion(message: RegionMessage): void {
  regions.set(message.region, new Uint8Array(message.buffer));
  slots.set(message.region, new Map());
}

for (const region of data.regions) addRegion(region);

function slotAt(position: number): TransportSlot | null {
  const region = table.region(position);
  const offset = table.offset(position);
  const size = table.slotSize(position);
  if (!regions.has(region)) {
    for (let message = receiveMessageOnPort(data.port); message !== undefined; message = receiveMessageOnPort(data.port)) addRegion(message.message as RegionMessage);
  }
  const memory = regions.get(region);
  if (memory === undefined || offset < 0 || size <= 0 || offset + size > memory.length) return null;
  const inRegion = slots.get(region)!;
  let slot = inRegion.get(offset);
  if (slot === undefined || slot.bytes.length !== size) {
    slot = new TransportSlot(memory.subarray(offset, offset + size));
    inRegion.set(offset, slot);
  }
  return slot;
}

/** This thread's id in the kernel ("PID/task/TID"); 0 when /proc cannot tell (the pool then relies on its stall timeout). */
function kernelThreadId(): number {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/').pop()) || 0;
  } catch {
    return 0;
  }
}

Atomics.store(new Int32Array(data.thread), 0, kernelThreadId());
const control = table.control;
data.port.postMessage('ready');
for (;;) {
  const limit = Atomics.load(control, LIMIT);
  if (Atomics.load(control, STOP) !== 0) break;
  table.claimAndRun(data.id, defaultPrimitives, slotAt);
  let spins = data.spinChecks;
  while (spins > 0 && Atomics.load(control, LIMIT) === limit) spins--;
  if (spins === 0) Atomics.wait(control, LIMIT, limit);
}
data.port.close();
