// Package etcd runs an embedded etcd member, so one backup-apiserver process is
// the whole operator: its objects live in a data directory on a persistent
// volume, not in memory. The test harness uses it for the kube-apiserver too.
package etcd

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// snapshotCatchUpEntries is how many applied raft entries the member keeps
// in memory, with their whole values, when it trims its raft log (etcd 3.7
// does so every 100 applied entries, apart from the snapshots it writes every
// SnapshotCount): at most about 200 entries instead of etcd's 5,000.
const snapshotCatchUpEntries = 100

// Config says where an embedded member keeps its data and listens.
type Config struct {
	// Dir is the data directory; it is created when missing.
	Dir string
	// ClientURL is where clients connect, e.g. http://127.0.0.1:2479.
	ClientURL string
	// PeerURL is the member's peer address; nothing else joins it, but etcd
	// requires one.
	PeerURL string
	// LogLevel is etcd's own log level (default "error": etcd is chatty).
	LogLevel string
}

// Server is a running embedded etcd member.
type Server struct {
	etcd *embed.Etcd
	// ClientURL is where the member serves clients.
	ClientURL string
	local     inProcess
	// interned are the values that objects read through the in-process
	// storage share.
	interned *internPool
}

// Start starts the member and waits until it serves clients.
func Start(ctx context.Context, c Config) (*Server, error) {
	clientURL, err := url.Parse(c.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd client URL %q: %w", c.ClientURL, err)
	}
	peerURL, err := url.Parse(c.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd peer URL %q: %w", c.PeerURL, err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "backup-apiserver"
	cfg.Dir = c.Dir
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = cfg.Name + "=" + peerURL.String()
	cfg.LogLevel = c.LogLevel
	if cfg.LogLevel == "" {
		cfg.LogLevel = "error"
	}
	// Serve metrics only on the client URL; no extra listener.
	cfg.ListenMetricsUrls = nil
	// The member is alone: no follower ever catches up from the raft log it
	// keeps in memory, by default the last 5,000 writes with their whole
	// values (14 MiB after a burst of Backup writes).
	cfg.SnapshotCatchUpEntries = snapshotCatchUpEntries

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting embedded etcd in %s: %w", c.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return &Server{etcd: e, ClientURL: clientURL.String(), interned: newInternPool()}, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd failed: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s did not become ready within 60s", c.Dir)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
}

// Err reports a fatal error of the running member.
func (s *Server) Err() <-chan error { return s.etcd.Err() }

// Stop stops the member and waits until its data is closed.
func (s *Server) Stop() {
	s.local.once.Do(func() {}) // orders the read of stop after its write
	if s.local.stop != nil {
		s.local.stop()
	}
	s.etcd.Close()
}
