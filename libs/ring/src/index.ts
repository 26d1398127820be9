export { createRing, DEFAULT_VIRTUAL_NODES, type Ring, type RingOptions } from './ring.ts';
