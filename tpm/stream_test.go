package tpm

import (
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeTPMServer serves raw TPM commands on a unix socket: each response
// echoes the command's last four bytes (an id). delay(n) says how long the
// n-th command (from 0, over all connections) waits before its answer;
// a negative delay never answers.
func fakeTPMServer(t *testing.T, delay func(n int) time.Duration) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "tpm.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var count atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					hdr := make([]byte, tpmHeaderLen)
					if _, err := io.ReadFull(c, hdr); err != nil {
						return
					}
					body := make([]byte, binary.BigEndian.Uint32(hdr[2:6])-tpmHeaderLen)
					if _, err := io.ReadFull(c, body); err != nil {
						return
					}
					d := delay(int(count.Add(1) - 1))
					if d < 0 {
						continue // never answers
					}
					id := body[len(body)-4:]
					go func() {
						time.Sleep(d)
						rsp := binary.BigEndian.AppendUint16(nil, 0x8001)
						rsp = binary.BigEndian.AppendUint32(rsp, tpmHeaderLen+4)
						rsp = binary.BigEndian.AppendUint32(rsp, 0)
						c.Write(append(rsp, id...))
					}()
				}
			}()
		}
	}()
	return sock
}

func command(id uint32) []byte {
	cmd := binary.BigEndian.AppendUint16(nil, 0x8001)
	cmd = binary.BigEndian.AppendUint32(cmd, tpmHeaderLen+4)
	cmd = binary.BigEndian.AppendUint32(cmd, 0x17b) // TPM2_GetRandom, any code
	return binary.BigEndian.AppendUint32(cmd, id)
}

// TestStreamLateAnswerNotReused: the answer to a command that timed out
// arrives late; the next command must get its own answer, not that one.
func TestStreamLateAnswerNotReused(t *testing.T) {
	sock := fakeTPMServer(t, func(n int) time.Duration {
		if n == 0 {
			return 400 * time.Millisecond
		}
		return 0
	})
	s, err := openStream("unix", sock, false, 150*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Send(command(1)); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("first command: %v, want a timeout", err)
	}
	time.Sleep(500 * time.Millisecond) // the late answer to command 1 is on the old connection now
	rsp, err := s.Send(command(2))
	if err != nil {
		t.Fatal(err)
	}
	if id := binary.BigEndian.Uint32(rsp[tpmHeaderLen:]); id != 2 {
		t.Fatalf("command 2 got the answer to command %d", id)
	}
}

// TestStreamNeverAnswers: a TPM that never answers fails each command
// after the timeout, not later, and the transport stays usable.
func TestStreamNeverAnswers(t *testing.T) {
	sock := fakeTPMServer(t, func(int) time.Duration { return -1 })
	s, err := openStream("unix", sock, false, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 3 {
		start := time.Now()
		if _, err := s.Send(command(uint32(i))); err == nil {
			t.Fatal("an answer from a TPM that never answers")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("command %d failed after %v, want about 200ms", i, d)
		}
	}
	if sendTimeout != 10*time.Second {
		t.Errorf("sendTimeout %v: the documented bound on a TPM that never answers is 10 s", sendTimeout)
	}
}

// TestRecordBoundedWhenTPMNeverAnswers: a decision's record over a unix:
// TPM that never answers fails in about the documented 10 s, not 60 s.
func TestRecordBoundedWhenTPMNeverAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("waits the 10 s bound")
	}
	sock := fakeTPMServer(t, func(int) time.Duration { return -1 })
	tp, err := Open("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	start := time.Now()
	r, err := NewRecorder(tp, RecorderOptions{PCR: DefaultPCR, Dir: filepath.Join(t.TempDir(), "events")})
	if err == nil {
		_, err = r.Record(t.Context(), sampleEvents(true)...)
	}
	d := time.Since(start)
	if err == nil {
		t.Fatal("recorded on a TPM that never answers")
	}
	if d < sendTimeout-time.Second || d > sendTimeout+3*time.Second {
		t.Fatalf("failed after %v, want about %v: %v", d, sendTimeout, err)
	}
}
