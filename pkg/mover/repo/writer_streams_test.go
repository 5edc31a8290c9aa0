package repo

import (
	"math/rand"
	"path/filepath"
	"testing"
)

// TestWriterStreams: blobs added to different streams go to different
// packs, however they interleave; Finish puts the streams' partly filled
// last packs together in one, whose table and offsets read back right.
func TestWriterStreams(t *testing.T) {
	r, err := Init(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Config.PackSize = 1 << 20
	rng := rand.New(rand.NewSource(1))
	w := r.NewWriter()
	var ids [3][]ID
	add := func(stream int) {
		b := make([]byte, 200<<10)
		rng.Read(b)
		id := r.BlobID(b)
		if _, err := w.AddTo(stream, id, b, false); err != nil {
			t.Fatal(err)
		}
		ids[stream] = append(ids[stream], id)
	}
	// Streams 1 and 2 interleaved, 7 blobs each: a full pack (6 blobs of
	// 200 KiB pass 1 MiB) and one blob left; stream 0 one blob.
	for i := 0; i < 14; i++ {
		add(1 + i%2)
	}
	add(0)
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	pack := func(id ID) ID {
		loc, ok := r.Lookup(id)
		if !ok {
			t.Fatalf("blob %s not in the index", id.Short())
		}
		return loc.Pack
	}
	for s := 1; s <= 2; s++ {
		for _, id := range ids[s][1:6] {
			if pack(id) != pack(ids[s][0]) {
				t.Errorf("stream %d's first six blobs are in more than one pack", s)
			}
		}
	}
	if pack(ids[1][0]) == pack(ids[2][0]) {
		t.Error("streams 1 and 2 share a pack")
	}
	last := pack(ids[0][0])
	if pack(ids[1][6]) != last || pack(ids[2][6]) != last || last == pack(ids[1][0]) || last == pack(ids[2][0]) {
		t.Error("the streams' last blobs are not together in a pack of their own")
	}
	table, err := r.readPackTable(last)
	if err != nil {
		t.Fatal(err)
	}
	if len(table) != 3 {
		t.Errorf("the merged pack's table lists %d blobs, want 3", len(table))
	}
	for _, b := range table {
		if loc, _ := r.Lookup(b.ID); loc.Offset != b.Offset || loc.Length != b.Length {
			t.Errorf("blob %s: table says offset %d, index %d", b.ID.Short(), b.Offset, loc.Offset)
		}
	}
	for s := range ids {
		for _, id := range ids[s] {
			if _, err := r.ReadBlob(id, nil); err != nil {
				t.Error(err)
			}
		}
	}
}
