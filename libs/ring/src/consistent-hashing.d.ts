// The package ships no types; this declares the parts the ring wrapper uses.
declare module 'consistent-hashing' {
  class ConsistentHashing {
    constructor(nodes: string[], options?: { replicas?: number; algorithm?: string });
    keys: string[];
    ring: Record<string, string>;
    nodes: string[];
    getNode(key: string): string;
    getNodePosition(hash: string): number;
    getRingLength(): number;
    crypto(value: string): string;
  }
  export default ConsistentHashing;
}
