// Package journal is the log handler of vfio-gate's --log-level: plain
// text, or, when stderr is systemd's journal stream, text lines prefixed
// with their syslog priority ("<4>") and no time, so that journalctl -p
// filters by level.
package journal
