package jetstream

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerConfig is an embedded nats-server with JetStream.
type ServerConfig struct {
	// Dir holds JetStream's store; a run's directory, say, so the queue,
	// the results and the checkpoints live and die with the run.
	Dir string
	// Listen is the client address, "127.0.0.1:4222" or "127.0.0.1:0" for
	// any free port. Empty means no listening port at all: only this
	// process connects, in process (Server.Connect).
	Listen string
	// Sync makes the store fsync every write before acknowledging it, so an
	// acknowledged result or label survives a machine crash (power loss,
	// kernel panic), not only a process crash; it costs a disk flush per
	// write. Without it, every write still reaches the kernel before it is
	// acknowledged — a SIGKILLed server loses nothing — and the kernel's
	// copy is fsynced every two minutes (nats-server's sync_interval), the
	// most a machine crash can lose. An executor's work stream is never
	// fsynced write by write (see Open): a lost task is published again.
	Sync bool
	// Name names the server; a cluster needs distinct names.
	Name string
	// Cluster, ClusterListen and Routes join a JetStream cluster: the
	// cluster's name, this server's route address on the loopback or the
	// network, and the other servers' route URLs ("nats://host:port").
	Cluster       string
	ClusterListen string
	Routes        []string
}

// Server is an embedded nats-server.
type Server struct {
	s   *server.Server
	cfg ServerConfig
}

// StartServer starts an embedded nats-server with JetStream and waits until
// it accepts connections.
func StartServer(cfg ServerConfig) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("jetstream: StartServer: ServerConfig.Dir is empty")
	}
	o := &server.Options{
		ServerName: cfg.Name,
		JetStream:  true,
		StoreDir:   cfg.Dir,
		SyncAlways: cfg.Sync,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 8 << 20, // a prompt's samples in one result
	}
	if cfg.Listen == "" {
		o.DontListen = true
	} else {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("jetstream: StartServer: Listen: %w", err)
		}
		o.Host, o.Port = host, port
	}
	if cfg.Cluster != "" {
		host, port, err := splitHostPort(cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("jetstream: StartServer: ClusterListen: %w", err)
		}
		o.Cluster = server.ClusterOpts{Name: cfg.Cluster, Host: host, Port: port}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("jetstream: StartServer: route %q: %w", r, err)
			}
			o.Routes = append(o.Routes, u)
		}
	}
	s, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("jetstream: StartServer: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, errors.New("jetstream: StartServer: the server did not start within 30 s")
	}
	return &Server{s: s, cfg: cfg}, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// URL is the client URL, or "" if the server does not listen.
func (s *Server) URL() string {
	if s.cfg.Listen == "" {
		return ""
	}
	return s.s.ClientURL()
}

// ClusterURL is the route URL other servers of a cluster join by, or "".
func (s *Server) ClusterURL() string {
	if s.cfg.Cluster == "" {
		return ""
	}
	a := s.s.ClusterAddr()
	if a == nil {
		return ""
	}
	return "nats://" + a.String()
}

// Connect opens a client connection in process, through no socket.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect("", append([]nats.Option{nats.InProcessServer(s.s)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("jetstream: connecting in process: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server; its store stays in Dir.
func (s *Server) Shutdown() {
	s.s.Shutdown()
	s.s.WaitForShutdown()
}

// Dial connects to the NATS server at url or, if url is empty, starts an
// embedded one storing in dir with no listening port and connects in
// process. The returned close function closes the connection and stops
// the embedded server, if any.
func Dial(url, dir string, opts ...nats.Option) (*nats.Conn, func(), error) {
	if url != "" {
		nc, err := nats.Connect(url, opts...)
		if err != nil {
			return nil, nil, fmt.Errorf("jetstream: connecting to %s: %w", url, err)
		}
		return nc, nc.Close, nil
	}
	s, err := StartServer(ServerConfig{Dir: dir, Sync: true})
	if err != nil {
		return nil, nil, err
	}
	nc, err := s.Connect(opts...)
	if err != nil {
		s.Shutdown()
		return nil, nil, err
	}
	return nc, func() { nc.Close(); s.Shutdown() }, nil
}
