// Package logfill writes large synthetic event logs directly to disk, for the
// tests and benchmarks that show a decision costs the same whatever the log
// size. The records are well-formed and chained (each segment's baseline is
// the previous segment's replay) but were never extended into the TPM: the
// first Record after Fill warns that the log does not replay to the PCR and
// records anyway, exactly as it must never deny for the log's state.
package logfill
