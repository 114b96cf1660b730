package merge

import (
	"bytes"
	"math"
)

// This file computes line diffs that agree with git's (xdiff's default "myers" algorithm,
// which `git merge-file` uses). Agreement matters more than minimality here: the merge
// decides what is a conflict from where the diff puts its hunks, so any difference in the
// diff shows up as a conflict git would not raise, or a clean merge git would refuse.
// Three things make git's diff what it is, and each is reproduced below:
//
//   - prune: lines that occur nowhere in the other file cannot be part of a match, and
//     lines that occur very often are dropped when they sit among such lines; both are
//     marked changed up front and the search runs on what remains;
//   - search: Myers' linear-space O(ND) divide and conquer, with the same tie-breaks
//     (which diagonal wins, where a box is split) and the same cut-offs for costly inputs;
//   - compact: each group of changed lines is slid as far down as equal lines allow,
//     unless sliding it back up lines it up with a change in the other file.

// edit is one hunk of an edit script: lines [a0, a0+an) of the old file are replaced by lines
// [b0, b0+bn) of the new one. A pure insertion has an == 0, a pure deletion bn == 0.
type edit struct {
	a0, an int
	b0, bn int
}

// splitLines cuts data after each "\n". Every line keeps its terminator, so "\r\n" stays
// part of the line and joining the lines gives back data byte for byte; only the last line
// may lack "\n".
func splitLines(data []byte) [][]byte {
	if len(data) == 0 {
		return nil
	}
	lines := make([][]byte, 0, bytes.Count(data, []byte{'\n'})+1)
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			lines = append(lines, data)
			break
		}
		lines = append(lines, data[:i+1:i+1])
		data = data[i+1:]
	}
	return lines
}

// Limits of the search, the values git uses. They only matter for inputs whose diff costs
// more than a few hundred edits; below that the search is exact.
const (
	maxEqLimit    = 1024 // a line with at least this many twins is "frequent" however long the file
	simScanWindow = 100  // how far the frequent-line check looks on either side
	kpDisRun      = 4    // a frequent line is dropped when frequent lines are under 1/4 of its run
	maxCostMin    = 256  // lowest edit cost at which the search settles for a good-enough split
	heurMinCost   = 256  // edit cost above which long diagonals ("snakes") may end the search early
	snakeCount    = 20   // how long a diagonal must be to count as a snake
	kHeur         = 4    // how much progress per unit of cost makes a snake worth splitting on
)

// side is one of the two files being compared.
type side struct {
	lines [][]byte
	class []int // class[i] == class[j] exactly when lines i and j (of either side) are equal
	// changed has a false sentinel at each end so that group walks need no bounds checks:
	// line i is at changed[i+1].
	changed []bool
	// keep lists the lines left after pruning, in order; the search works on their classes.
	keep []int
	kcls []int
}

func (s *side) isChanged(i int) bool     { return s.changed[i+1] }
func (s *side) setChanged(i int, v bool) { s.changed[i+1] = v }

// diffLines returns the edit script that turns a into b, in order.
func diffLines(a, b [][]byte) []edit {
	var c classifier
	return diffClasses(a, c.classes(a), b, c.classes(b), len(c.ids))
}

// diffClasses is diffLines for lines already numbered by one classifier; nClasses bounds
// the numbers.
func diffClasses(a [][]byte, ca []int, b [][]byte, cb []int, nClasses int) []edit {
	x := &side{lines: a, class: ca, changed: make([]bool, len(a)+2)}
	y := &side{lines: b, class: cb, changed: make([]bool, len(b)+2)}
	prune(x, y, nClasses)
	s := newSearch(x, y)
	s.compare(0, len(x.keep), 0, len(y.keep), false)
	compact(x, y)
	compact(y, x)
	return script(x, y)
}

// classifier numbers distinct lines so that the diff compares ints, not bytes. Merge3 runs
// one classifier over all three files and reuses the numbers for both of its diffs.
type classifier struct {
	ids map[string]int
}

func (c *classifier) classes(lines [][]byte) []int {
	if c.ids == nil {
		c.ids = make(map[string]int, len(lines))
	}
	cls := make([]int, len(lines))
	for i, l := range lines {
		id, ok := c.ids[string(l)]
		if !ok {
			id = len(c.ids)
			c.ids[string(l)] = id
		}
		cls[i] = id
	}
	return cls
}

// bogoSqrt is the rough square root git uses to scale its limits: the smallest power of two
// p with p*p > n (1 for n == 0).
func bogoSqrt(n int) int {
	i := 1
	for ; n > 0; n >>= 2 {
		i <<= 1
	}
	return i
}

// prune skips the common head and tail, marks as changed the lines that cannot take part in
// a match, and leaves the rest in keep for the search. Besides speed, this changes which of
// several equally short diffs is found, which is why it is done exactly as git does it.
func prune(x, y *side, nClasses int) {
	nx, ny := len(x.lines), len(y.lines)
	start := 0
	for lim := min(nx, ny); start < lim && x.class[start] == y.class[start]; start++ {
	}
	tail := 0
	for lim := min(nx, ny) - start; tail < lim && x.class[nx-1-tail] == y.class[ny-1-tail]; tail++ {
	}
	endX, endY := nx-tail-1, ny-tail-1 // inclusive

	// Occurrences are counted over the whole other file, trimmed head and tail included.
	countX, countY := make([]int, nClasses), make([]int, nClasses)
	for _, c := range x.class {
		countX[c]++
	}
	for _, c := range y.class {
		countY[c]++
	}
	x.pruneAgainst(countY, start, endX)
	y.pruneAgainst(countX, start, endY)
}

// How often a line occurs in the other file, for pruning.
const (
	unmatched byte = iota // never: the line is changed whatever the search finds
	matched               // a few times
	frequent              // at least the square root of the file's length
)

// pruneAgainst classifies lines [start, end] of s by how often they occur in the other file
// (none, some, frequent) and keeps those that can usefully match.
func (s *side) pruneAgainst(other []int, start, end int) {
	limit := min(bogoSqrt(len(s.lines)), maxEqLimit)
	dis := make([]byte, len(s.lines)+1)
	s.keep = make([]int, 0, max(end-start+1, 0))
	s.kcls = make([]int, 0, max(end-start+1, 0))
	for i := start; i <= end; i++ {
		switch n := min(other[s.class[i]], limit); {
		case n == 0:
			dis[i] = unmatched
		case n >= limit:
			dis[i] = frequent
		default:
			dis[i] = matched
		}
	}
	for i := start; i <= end; i++ {
		if dis[i] == matched || (dis[i] == frequent && !dropFrequent(dis, i, start, end)) {
			s.keep = append(s.keep, i)
			s.kcls = append(s.kcls, s.class[i])
		} else {
			s.setChanged(i, true)
		}
	}
}

// dropFrequent tells whether frequent line i sits in a run of unmatched and frequent lines
// (bounded by lines with a few matches) in which the unmatched ones dominate; such a line
// would only produce spurious one-line matches inside a changed block.
func dropFrequent(dis []byte, i, start, end int) bool {
	start = max(start, i-simScanWindow)
	end = min(end, i+simScanWindow)
	unmatchedBefore, frequentBefore := 0, 1
	for r := 1; i-r >= start; r++ {
		if dis[i-r] == unmatched {
			unmatchedBefore++
		} else if dis[i-r] == frequent {
			frequentBefore++
		} else {
			break
		}
	}
	if unmatchedBefore == 0 {
		return false
	}
	unmatchedAfter, frequentAfter := 0, 1
	for r := 1; i+r <= end; r++ {
		if dis[i+r] == unmatched {
			unmatchedAfter++
		} else if dis[i+r] == frequent {
			frequentAfter++
		} else {
			break
		}
	}
	if unmatchedAfter == 0 {
		return false
	}
	nUnmatched := unmatchedBefore + unmatchedAfter
	nFrequent := frequentBefore + frequentAfter
	return nFrequent*kpDisRun < nFrequent+nUnmatched
}

// search holds the state of Myers' algorithm over the kept lines of two sides.
type search struct {
	x, y   *side
	a, b   []int // classes of the kept lines
	fwd    []int // furthest forward reach per diagonal, indexed by diagonal+koff
	bwd    []int // furthest backward reach per diagonal
	koff   int
	maxCst int
}

func newSearch(x, y *side) *search {
	n := len(x.keep) + len(y.keep) + 3
	return &search{
		x: x, y: y, a: x.kcls, b: y.kcls,
		fwd: make([]int, n), bwd: make([]int, n),
		koff:   len(y.keep) + 1,
		maxCst: max(bogoSqrt(n), maxCostMin),
	}
}

// compare marks the changed lines between kept lines [off1, lim1) and [off2, lim2): it strips
// the common ends, then splits the box where the forward and backward searches meet and
// recurses on both halves. needMin asks for an exact split, without the cost cut-offs.
func (s *search) compare(off1, lim1, off2, lim2 int, needMin bool) {
	for off1 < lim1 && off2 < lim2 && s.a[off1] == s.b[off2] {
		off1++
		off2++
	}
	for off1 < lim1 && off2 < lim2 && s.a[lim1-1] == s.b[lim2-1] {
		lim1--
		lim2--
	}
	switch {
	case off1 == lim1:
		for ; off2 < lim2; off2++ {
			s.y.setChanged(s.y.keep[off2], true)
		}
	case off2 == lim2:
		for ; off1 < lim1; off1++ {
			s.x.setChanged(s.x.keep[off1], true)
		}
	default:
		i1, i2, minLo, minHi := s.split(off1, lim1, off2, lim2, needMin)
		s.compare(off1, i1, off2, i2, minLo)
		s.compare(i1, lim1, i2, lim2, minHi)
	}
}

// split runs the forward search from (off1, off2) and the backward one from (lim1, lim2), one
// edit at a time, until they overlap on a diagonal, and returns that point. Diagonal d holds
// the points with i1-i2 == d. When the cost grows large it settles for a point reached by a
// long snake, or for the furthest point reached, and says which half must then be searched
// exactly (minLo, minHi).
func (s *search) split(off1, lim1, off2, lim2 int, needMin bool) (i1, i2 int, minLo, minHi bool) {
	a, b, fwd, bwd, o := s.a, s.b, s.fwd, s.bwd, s.koff
	dmin, dmax := off1-lim2, lim1-off2
	fmid, bmid := off1-off2, lim1-lim2
	odd := (fmid-bmid)&1 != 0
	fmin, fmax := fmid, fmid
	bmin, bmax := bmid, bmid
	fwd[fmid+o] = off1
	bwd[bmid+o] = lim1

	for cost := 1; ; cost++ {
		gotSnake := false

		// Widen the band of forward diagonals by one on each side while it stays inside
		// the box; a new outer neighbour gets a value no path can lose to.
		if fmin > dmin {
			fmin--
			fwd[fmin-1+o] = -1
		} else {
			fmin++
		}
		if fmax < dmax {
			fmax++
			fwd[fmax+1+o] = -1
		} else {
			fmax--
		}
		for d := fmax; d >= fmin; d -= 2 {
			// Ties go to the step that advances in the old file (a deletion).
			if fwd[d-1+o] >= fwd[d+1+o] {
				i1 = fwd[d-1+o] + 1
			} else {
				i1 = fwd[d+1+o]
			}
			from := i1
			i2 = i1 - d
			for i1 < lim1 && i2 < lim2 && a[i1] == b[i2] {
				i1++
				i2++
			}
			if i1-from > snakeCount {
				gotSnake = true
			}
			fwd[d+o] = i1
			if odd && bmin <= d && d <= bmax && bwd[d+o] <= i1 {
				return i1, i2, true, true
			}
		}

		if bmin > dmin {
			bmin--
			bwd[bmin-1+o] = math.MaxInt
		} else {
			bmin++
		}
		if bmax < dmax {
			bmax++
			bwd[bmax+1+o] = math.MaxInt
		} else {
			bmax--
		}
		for d := bmax; d >= bmin; d -= 2 {
			if bwd[d-1+o] < bwd[d+1+o] {
				i1 = bwd[d-1+o]
			} else {
				i1 = bwd[d+1+o] - 1
			}
			from := i1
			i2 = i1 - d
			for i1 > off1 && i2 > off2 && a[i1-1] == b[i2-1] {
				i1--
				i2--
			}
			if from-i1 > snakeCount {
				gotSnake = true
			}
			bwd[d+o] = i1
			if !odd && fmin <= d && d <= fmax && i1 <= fwd[d+o] {
				return i1, i2, true, true
			}
		}

		if needMin {
			continue
		}

		// Past heurMinCost, accept a point that sits at the end of a long snake and has
		// made much more progress than it cost.
		if gotSnake && cost > heurMinCost {
			best := 0
			for d := fmax; d >= fmin; d -= 2 {
				p1 := fwd[d+o]
				p2 := p1 - d
				v := (p1 - off1) + (p2 - off2) - abs(d-fmid)
				if v > kHeur*cost && v > best &&
					off1+snakeCount <= p1 && p1 < lim1 && off2+snakeCount <= p2 && p2 < lim2 {
					for k := 1; a[p1-k] == b[p2-k]; k++ {
						if k == snakeCount {
							best, i1, i2 = v, p1, p2
							break
						}
					}
				}
			}
			if best > 0 {
				return i1, i2, true, false
			}
			for d := bmax; d >= bmin; d -= 2 {
				p1 := bwd[d+o]
				p2 := p1 - d
				v := (lim1 - p1) + (lim2 - p2) - abs(d-bmid)
				if v > kHeur*cost && v > best &&
					off1 < p1 && p1 <= lim1-snakeCount && off2 < p2 && p2 <= lim2-snakeCount {
					for k := 0; a[p1+k] == b[p2+k]; k++ {
						if k == snakeCount-1 {
							best, i1, i2 = v, p1, p2
							break
						}
					}
				}
			}
			if best > 0 {
				return i1, i2, false, true
			}
		}

		// Past maxCst, give up on an optimal split and take the furthest point either
		// search has reached; this bounds the work on files that share little.
		if cost >= s.maxCst {
			fbest, fbest1 := -1, -1
			for d := fmax; d >= fmin; d -= 2 {
				p1 := min(fwd[d+o], lim1)
				p2 := p1 - d
				if lim2 < p2 {
					p1, p2 = lim2+d, lim2
				}
				if fbest < p1+p2 {
					fbest, fbest1 = p1+p2, p1
				}
			}
			bbest, bbest1 := math.MaxInt, math.MaxInt
			for d := bmax; d >= bmin; d -= 2 {
				p1 := max(off1, bwd[d+o])
				p2 := p1 - d
				if p2 < off2 {
					p1, p2 = off2+d, off2
				}
				if p1+p2 < bbest {
					bbest, bbest1 = p1+p2, p1
				}
			}
			if (lim1+lim2)-bbest < fbest-(off1+off2) {
				return fbest1, fbest - fbest1, true, false
			}
			return bbest1, bbest - bbest1, false, true
		}
	}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// group is a run of changed lines [start, end) of one side; between two unchanged lines
// there is always a group, often an empty one (start == end), so the groups of the two sides
// pair up one to one.
type group struct{ start, end int }

func (s *side) firstGroup() group {
	g := group{}
	for s.isChanged(g.end) {
		g.end++
	}
	return g
}

func (s *side) nextGroup(g *group) bool {
	if g.end == len(s.lines) {
		return false
	}
	g.start = g.end + 1
	for g.end = g.start; s.isChanged(g.end); g.end++ {
	}
	return true
}

func (s *side) prevGroup(g *group) bool {
	if g.start == 0 {
		return false
	}
	g.end = g.start - 1
	for g.start = g.end; s.isChanged(g.start - 1); g.start-- {
	}
	return true
}

// slideDown moves g one line down when its first line equals the line after it, absorbing
// any group it then touches.
func (s *side) slideDown(g *group) bool {
	if g.end >= len(s.lines) || s.class[g.start] != s.class[g.end] {
		return false
	}
	s.setChanged(g.start, false)
	s.setChanged(g.end, true)
	g.start++
	g.end++
	for s.isChanged(g.end) {
		g.end++
	}
	return true
}

// slideUp moves g one line up when its last line equals the line before it.
func (s *side) slideUp(g *group) bool {
	if g.start == 0 || s.class[g.start-1] != s.class[g.end-1] {
		return false
	}
	g.start--
	g.end--
	s.setChanged(g.start, true)
	s.setChanged(g.end, false)
	for s.isChanged(g.start - 1) {
		g.start--
	}
	return true
}

// compact gives every group of changed lines in s a canonical position: the search may put a
// block of inserted or deleted lines anywhere among equal lines ("a b a" + "b a"), and both
// the merge and a reader are better served by one rule. Groups that touch while sliding are
// joined. A group ends as low as it can go, unless it can line up with a change in the other
// side (a replacement reads better than a deletion next to an insertion).
func compact(s, other *side) {
	g, og := s.firstGroup(), other.firstGroup()
	for {
		if g.end != g.start {
			var size, earliestEnd int
			endMatchingOther := -1
			for {
				size = g.end - g.start
				endMatchingOther = -1
				for s.slideUp(&g) {
					other.prevGroup(&og)
				}
				earliestEnd = g.end
				if og.end > og.start {
					endMatchingOther = g.end
				}
				for s.slideDown(&g) {
					other.nextGroup(&og)
					if og.end > og.start {
						endMatchingOther = g.end
					}
				}
				if size == g.end-g.start {
					break
				}
			}
			if g.end != earliestEnd && endMatchingOther != -1 {
				for og.end == og.start {
					if !s.slideUp(&g) {
						break
					}
					other.prevGroup(&og)
				}
			}
		}
		if !s.nextGroup(&g) {
			break
		}
		other.nextGroup(&og)
	}
}

// script collects the changed lines of both sides into hunks.
func script(x, y *side) []edit {
	var rev []edit
	for i1, i2 := len(x.lines), len(y.lines); i1 >= 0 || i2 >= 0; i1, i2 = i1-1, i2-1 {
		if x.changedAt(i1-1) || y.changedAt(i2-1) {
			l1, l2 := i1, i2
			for x.changedAt(i1 - 1) {
				i1--
			}
			for y.changedAt(i2 - 1) {
				i2--
			}
			rev = append(rev, edit{a0: i1, an: l1 - i1, b0: i2, bn: l2 - i2})
		}
	}
	edits := make([]edit, len(rev))
	for i, e := range rev {
		edits[len(rev)-1-i] = e
	}
	return edits
}

// changedAt is isChanged for any index, false outside the file.
func (s *side) changedAt(i int) bool {
	return i >= -1 && i <= len(s.lines) && s.changed[i+1]
}
