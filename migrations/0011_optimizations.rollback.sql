DROP TABLE IF EXISTS optimization_trials;
DROP TABLE IF EXISTS optimization_chunks;
DROP TABLE IF EXISTS optimizations;
