package inventory

import "github.com/palisade-cwpp/palisade/internal/finding"

// Diff returns what changed from old to new: packages only in new are added, only in old are
// removed. A version change is a removal and an addition, as in a package manager's log.
func Diff(old, new []finding.Package) (added, removed []finding.Package) {
	have := make(map[string]bool, len(old))
	for _, p := range old {
		have[p.Key()] = true
	}
	keep := make(map[string]bool, len(new))
	for _, p := range new {
		keep[p.Key()] = true
		if !have[p.Key()] {
			added = append(added, p)
		}
	}
	for _, p := range old {
		if !keep[p.Key()] {
			removed = append(removed, p)
		}
	}
	return added, removed
}
