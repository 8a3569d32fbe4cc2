import { MemoryStore } from '../src/store/memory-store.js';
import { runStoreContract } from './helpers/store-contract.js';

runStoreContract('memory', async () => ({ store: new MemoryStore(), cleanup: async () => {} }));
