"""The tamper-evident audit log (issue 7). So far: the Merkle maths (``merkle``) and the signed
checkpoint note (``checkpoint``); the log, its
sequencer, checkpoints, proofs over HTTP and the auditor UI are not built yet."""
