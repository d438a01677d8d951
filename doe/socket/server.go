package socket

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"

	"github.com/vfio-gate/vfio-gate/doe"
)

// Server serves DOE objects over spdm-socket, one client at a time.
type Server struct {
	// Features is the discovery list; discovery requests are answered from
	// it (doe.AnswerDiscovery), the way QEMU answers them itself.
	Features []doe.Feature
	// Handler serves every other object. Its error drops the request: the
	// reply is an empty NORMAL message.
	Handler doe.Handler
	// Logger receives one record per connection problem. Nil discards.
	Logger *slog.Logger
	// MaxRequest caps a request message payload; default MaxMessage.
	MaxRequest int
}

// Serve is (&Server{Features: features, Handler: h}).Serve(ctx, ln).
func Serve(ctx context.Context, ln net.Listener, features []doe.Feature, h doe.Handler) error {
	s := &Server{Features: features, Handler: h}
	return s.Serve(ctx, ln)
}

// Serve accepts clients on ln and serves them one after the other until
// ctx ends (it then closes ln and the current connection and returns
// ctx.Err()) or Accept fails. A SHUTDOWN, EOF or malformed message ends the
// current connection only.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		s.serveConn(ctx, c)
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	log := s.logger().With("peer", c.RemoteAddr().String())
	max := s.MaxRequest
	if max <= 0 || max > MaxMessage {
		max = MaxMessage
	}
	r := newReader(c) // TCP_QUICKACK before each read: QEMU splits header and payload
	for {
		m, err := readMessage(r, max)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Info("doe/socket: dropping client", "err", err)
			}
			return
		}
		var reply message
		switch m.cmd {
		case CommandShutdown:
			writeMessage(c, message{cmd: CommandShutdown, transport: m.transport, payload: []byte{}})
			return
		case CommandNormal:
			reply = message{cmd: CommandNormal, transport: m.transport, payload: []byte{}}
			if m.transport == TransportPCIDOE {
				reply.payload = s.answer(log, m.payload)
			} else {
				log.Info("doe/socket: unsupported transport", "transport", m.transport.String())
			}
		default:
			log.Info("doe/socket: unknown command", "command", m.cmd.String())
			reply = message{cmd: CommandUnknown, transport: m.transport, payload: []byte{}}
		}
		if err := writeMessage(c, reply); err != nil {
			log.Info("doe/socket: writing reply", "err", err)
			return
		}
	}
}

// answer serves one DOE object; nil (an empty reply) drops it.
func (s *Server) answer(log *slog.Logger, obj []byte) []byte {
	f, req, err := doe.DecodeObject(obj, 0)
	if err != nil {
		log.Info("doe/socket: malformed request object", "err", err)
		return nil
	}
	var rsp []byte
	switch {
	case f == doe.FeatureDiscovery:
		rsp, err = doe.AnswerDiscovery(s.Features, req)
	case s.Handler == nil:
		err = errors.New("no handler")
	default:
		rsp, err = s.Handler(f, req)
	}
	if err != nil {
		log.Info("doe/socket: request dropped", "feature", f.Name(), "err", err)
		return nil
	}
	out, err := doe.EncodeObject(f, rsp)
	if err != nil {
		log.Info("doe/socket: response too large", "feature", f.Name(), "bytes", len(rsp))
		return nil
	}
	return out
}
