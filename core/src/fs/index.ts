export { writeFileAtomic } from './write-atomic.js';
