package login

import (
	"container/list"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"
)

// history is what the engine has learned: for each account, the networks it has logged in
// from. It is bounded: past maxUsers the least recently seen account is forgotten, past
// maxSources an account's least recently used network is.
type history struct {
	maxUsers, maxSources int
	users                map[userKey]*list.Element // of *userHistory
	lru                  list.List                 // front: least recently seen
	usersEvicted         uint64
	sourcesEvicted       uint64
}

// userKey names an account: on the agent Host is empty, on the console it keeps the same
// account name on different hosts apart.
type userKey struct{ host, user string }

type userHistory struct {
	key       userKey
	firstSeen time.Time
	lastSeen  time.Time
	sources   map[netip.Prefix]*sourceHistory
}

type sourceHistory struct {
	firstSeen, lastSeen time.Time
}

func newHistory(maxUsers, maxSources int) *history {
	return &history{maxUsers: maxUsers, maxSources: maxSources, users: make(map[userKey]*list.Element)}
}

// sourceNet is the network a source address is learned as: its /24 for IPv4, its /64 for
// IPv6, so that a user whose address changes within their provider's block is not "new".
func sourceNet(a netip.Addr) netip.Prefix {
	bits := 64
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p
}

// learn records a network login by k from net at t. It returns whether the network was new
// for the account and, if so, how long before t the account was first seen (the learning
// clock); an account seen for the first time returns new=false.
func (h *history) learn(k userKey, net netip.Prefix, t time.Time) (isNew bool, age time.Duration) {
	el, ok := h.users[k]
	if !ok {
		u := &userHistory{key: k, firstSeen: t, lastSeen: t, sources: map[netip.Prefix]*sourceHistory{net: {t, t}}}
		h.users[k] = h.lru.PushBack(u)
		for h.lru.Len() > h.maxUsers {
			old := h.lru.Remove(h.lru.Front()).(*userHistory)
			delete(h.users, old.key)
			h.usersEvicted++
		}
		return false, 0
	}
	h.lru.MoveToBack(el)
	u := el.Value.(*userHistory)
	if t.Before(u.firstSeen) {
		u.firstSeen = t
	}
	if t.After(u.lastSeen) {
		u.lastSeen = t
	}
	if s, ok := u.sources[net]; ok {
		if t.After(s.lastSeen) {
			s.lastSeen = t
		}
		if t.Before(s.firstSeen) {
			s.firstSeen = t
		}
		return false, 0
	}
	if len(u.sources) >= h.maxSources {
		u.evictOldestSource()
		h.sourcesEvicted++
	}
	u.sources[net] = &sourceHistory{t, t}
	return true, t.Sub(u.firstSeen)
}

// evictOldestSource forgets the network used least recently (ties: the smaller prefix, so
// the choice is deterministic).
func (u *userHistory) evictOldestSource() {
	var victim netip.Prefix
	var vs *sourceHistory
	for p, s := range u.sources {
		if vs == nil || s.lastSeen.Before(vs.lastSeen) || s.lastSeen.Equal(vs.lastSeen) && comparePrefix(p, victim) < 0 {
			victim, vs = p, s
		}
	}
	delete(u.sources, victim)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

func (h *history) sourceCount() int {
	n := 0
	for _, el := range h.users {
		n += len(el.Value.(*userHistory).sources)
	}
	return n
}

// snapshotVersion is the format of Snapshot's JSON; Restore refuses others.
const snapshotVersion = 1

type snapshotDoc struct {
	Version int            `json:"version"`
	Users   []snapshotUser `json:"users"` // least recently seen first
}

type snapshotUser struct {
	Host      string           `json:"host,omitempty"`
	User      string           `json:"user"`
	FirstSeen time.Time        `json:"first_seen"`
	LastSeen  time.Time        `json:"last_seen"`
	Sources   []snapshotSource `json:"sources"`
}

type snapshotSource struct {
	Net       netip.Prefix `json:"net"`
	FirstSeen time.Time    `json:"first_seen"`
	LastSeen  time.Time    `json:"last_seen"`
}

func (h *history) snapshot() ([]byte, error) {
	doc := snapshotDoc{Version: snapshotVersion, Users: make([]snapshotUser, 0, h.lru.Len())}
	for el := h.lru.Front(); el != nil; el = el.Next() {
		u := el.Value.(*userHistory)
		su := snapshotUser{Host: u.key.host, User: u.key.user, FirstSeen: u.firstSeen, LastSeen: u.lastSeen,
			Sources: make([]snapshotSource, 0, len(u.sources))}
		for p, s := range u.sources {
			su.Sources = append(su.Sources, snapshotSource{Net: p, FirstSeen: s.firstSeen, LastSeen: s.lastSeen})
		}
		sortSources(su.Sources)
		doc.Users = append(doc.Users, su)
	}
	return json.Marshal(doc)
}

func sortSources(s []snapshotSource) {
	// Small per-user lists: insertion sort by prefix keeps the output stable without a closure
	// allocation per user.
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && comparePrefix(s[j].Net, s[j-1].Net) < 0; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// restoreHistory builds a history from Snapshot's JSON, applying the bounds: past maxUsers
// the least recently seen accounts are dropped, past maxSources an account's least recently
// used networks are.
func restoreHistory(b []byte, maxUsers, maxSources int) (*history, error) {
	var doc snapshotDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("login history: %w", err)
	}
	if doc.Version != snapshotVersion {
		return nil, fmt.Errorf("login history: version %d, want %d", doc.Version, snapshotVersion)
	}
	h := newHistory(maxUsers, maxSources)
	for _, su := range doc.Users {
		k := userKey{su.Host, su.User}
		if _, dup := h.users[k]; dup {
			return nil, fmt.Errorf("login history: user %q on host %q appears twice", su.User, su.Host)
		}
		if su.FirstSeen.IsZero() || su.LastSeen.IsZero() {
			return nil, fmt.Errorf("login history: user %q has no first or last login time", su.User)
		}
		u := &userHistory{key: k, firstSeen: su.FirstSeen.UTC(), lastSeen: su.LastSeen.UTC(), sources: make(map[netip.Prefix]*sourceHistory, len(su.Sources))}
		for _, ss := range su.Sources {
			if !ss.Net.IsValid() || ss.Net != sourceNet(ss.Net.Addr()) || ss.Net.Addr().Is4In6() || ss.Net.Addr().Zone() != "" {
				return nil, fmt.Errorf("login history: user %q: %v is not a /24 (IPv4) or /64 (IPv6) network", su.User, ss.Net)
			}
			if _, dup := u.sources[ss.Net]; dup {
				return nil, fmt.Errorf("login history: user %q: network %v appears twice", su.User, ss.Net)
			}
			u.sources[ss.Net] = &sourceHistory{ss.FirstSeen.UTC(), ss.LastSeen.UTC()}
		}
		for len(u.sources) > maxSources {
			u.evictOldestSource()
			h.sourcesEvicted++
		}
		h.users[k] = h.lru.PushBack(u)
		for h.lru.Len() > maxUsers {
			old := h.lru.Remove(h.lru.Front()).(*userHistory)
			delete(h.users, old.key)
			h.usersEvicted++
		}
	}
	return h, nil
}
