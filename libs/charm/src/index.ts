export { type Backend, formatBackends, parseBackends } from './backends.ts';
