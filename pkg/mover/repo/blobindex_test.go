package repo

import (
	"math/rand"
	"reflect"
	"testing"
)

// An index encoded from a blobIndex decodes to the same blobs and places,
// and two blobIndexes of the same blobs encode to the same bytes whatever
// order they were filled in.
func TestBlobIndexEncodeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	want := map[ID]Location{}
	packs := make([]ID, 7)
	for i := range packs {
		rng.Read(packs[i][:])
	}
	for i := 0; i < 5000; i++ {
		var id ID
		rng.Read(id[:])
		want[id] = Location{Pack: packs[rng.Intn(len(packs))], Offset: rng.Int63n(1 << 40), Length: uint32(rng.Intn(1 << 22)), RawLength: uint32(rng.Intn(1 << 22)), Compressed: rng.Intn(2) == 0}
	}
	a, b := newBlobIndex(), newBlobIndex()
	ids := make([]ID, 0, len(want))
	for id, l := range want {
		a.put(id, l)
		ids = append(ids, id)
	}
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	for _, id := range ids {
		b.put(id, want[id])
	}
	got, err := DecodeIndex(a.encode())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %d blobs, want %d (or places differ)", len(got), len(want))
	}
	if string(a.encode()) != string(b.encode()) {
		t.Error("the same blobs encode differently")
	}
	for id, l := range want {
		if g, ok := a.get(id); !ok || g != l {
			t.Fatalf("get(%s) = %v, %v; want %v", id.Short(), g, ok, l)
		}
	}
}
