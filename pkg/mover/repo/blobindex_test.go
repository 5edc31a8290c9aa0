package repo

import (
	"bytes"
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

// The streaming decoder accepts what decodeIndex accepts, with the same
// blobs in the same order, and refuses what it refuses.
func TestDecodeIndexStreamMatches(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	x := newBlobIndex()
	for i := 0; i < 3000; i++ {
		var id, pack ID
		rng.Read(id[:])
		pack[0] = byte(rng.Intn(5))
		x.put(id, Location{Pack: pack, Offset: rng.Int63n(1 << 30), Length: 1 + uint32(rng.Intn(1<<20)), RawLength: uint32(rng.Intn(1 << 20)), Compressed: rng.Intn(2) == 0})
	}
	good := x.encode()
	inputs := [][]byte{good, nil, good[:3], good[:len(good)-1], append(append([]byte{}, good...), 0)}
	for i := 0; i < 200; i++ {
		bad := append([]byte{}, good...)
		bad[rng.Intn(len(bad))] ^= byte(1 + rng.Intn(255))
		inputs = append(inputs, bad, good[:rng.Intn(len(good))])
	}
	for i, in := range inputs {
		var a, b []ID
		var la, lb []Location
		errA := decodeIndex(in, func(id ID, l Location) { a = append(a, id); la = append(la, l) })
		errB := decodeIndexStream(bytes.NewReader(in), func(id ID, l Location) { b = append(b, id); lb = append(lb, l) })
		if (errA == nil) != (errB == nil) {
			t.Fatalf("input %d: decodeIndex: %v, decodeIndexStream: %v", i, errA, errB)
		}
		if errA == nil && (!reflect.DeepEqual(a, b) || !reflect.DeepEqual(la, lb)) {
			t.Fatalf("input %d: the decoders disagree on the blobs", i)
		}
	}
}
