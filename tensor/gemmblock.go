package tensor

import "github.com/posttrain/posttrain/tensor/internal/simd"

// The blocked product, after Goto and van de Geijn, "Anatomy of
// High-Performance Matrix Multiplication" (ACM TOMS 34(3), 2008), and the
// BLIS refinement (Van Zee and van de Geijn, ACM TOMS 41(3), 2015):
//
//	for each task (a block of rows × a block of columns of C, in parallel)
//	  for each column block jc of nc columns        (packed B block in L2)
//	    for each depth block pc of kc                (C is touched once per pc)
//	      pack op(B)[pc:pc+kc, jc:jc+nc] into NR-wide panels, times alpha
//	      for each tile of MR rows                   (its kc×MR of A stays in L1)
//	        for each panel of NR columns             (streams from L2)
//	          micro-kernel: MR×NR of C += A tile · B panel
//
// A is read in place, not packed: the micro-kernel takes its row and depth
// strides, which covers op(A) = A and op(A) = Aᵀ alike, and a tile of kc×MR
// floats (24 KiB for 12×512) is reused from L1 by every panel of the block.
// Only B is packed, once per task and block, into a per-worker buffer; its
// transpose, if any, happens while packing.
//
// Tasks never share buffers or wait for each other, so there are no
// barriers: a task is a rectangle of C, and workers claim tasks from an
// atomic counter. Splitting columns costs extra reads of A, splitting rows
// extra packing of B; plan weighs the two.
const (
	gemmKC     = 512                               // deepest K block: a 12×512 A tile is 24 KiB of a 48 KiB L1
	gemmBBlock = 1 << 18                           // floats in a packed B block (1 MiB, half of a 2 MiB L2)
	gemmATiles = 16                                // transposed A tiles packed at a time
	gemmBuf    = gemmBBlock + gemmATiles*16*gemmKC // a worker's buffer: B block, then A tiles of up to 16 rows
	// gemmMinWork is the fewest multiply-adds worth waking another worker
	// for: about 20 µs of one core's work, several times the hand-off cost.
	gemmMinWork = 1 << 21
	// gemmTasksPerWorker cuts work finer than one task per worker, so a
	// worker slowed by a busy core hands its share to the others.
	gemmTasksPerWorker = 4
)

// gemmPlan is how one product is cut into tasks and blocks.
type gemmPlan struct {
	kern           simd.GemmKernel
	bf             *simd.BF16Kernel // bfloat16 products on a tier with bfloat16 arithmetic
	kc, nc         int              // depth of a K block; columns of a packed B block (a multiple of NR)
	mChunk, nChunk int              // rows and columns of C per task (multiples of MR and NR)
	cm, cn         int              // tasks along rows and columns
}

func (pl *gemmPlan) tasks() int { return pl.cm * pl.cn }

// plan cuts g for w workers. The K blocking depends on k alone, so every
// element of C sums its products in the same order whatever w is.
func plan(g *gemmArgs, w int) gemmPlan {
	pl := gemmPlan{kern: *simd.K.Gemm}
	mr, nr := pl.kern.MR, pl.kern.NR
	nk := ceilDiv(g.k, gemmKC)
	pl.kc = ceilDiv(g.k, nk)
	pl.nc = max(nr, gemmBBlock/pl.kc/nr*nr)
	if g.bf && simd.K.BF16 != nil {
		// Pairs of k never straddle two blocks, and a block of B in
		// bfloat16 holds twice the elements.
		pl.bf = simd.K.BF16
		mr, nr = pl.bf.MR, pl.bf.NR
		pl.kc += pl.kc & 1
		pl.nc = max(nr, gemmBBlock/pairs(pl.kc, pl.bf.KBlock)/nr*nr)
	}

	mTiles, nPanels := ceilDiv(g.m, mr), ceilDiv(g.n, nr)
	t := 1
	if w > 1 {
		t = w * gemmTasksPerWorker
	}
	// Cut C into cm×cn ≥ t rectangles. Each row block packs the B of its
	// columns (cm·N floats packed in all) and each column block reads all
	// of its rows of A (cn·M floats read); a packed float costs about two
	// read ones, so minimise 2·cm·N + cn·M.
	cm, cn, best := 1, min(nPanels, t), -1
	for i := 1; i <= min(mTiles, t); i++ {
		j := min(nPanels, ceilDiv(t, i))
		if i*j < min(t, mTiles*nPanels) {
			continue
		}
		if cost := 2*i*g.n + j*g.m; best < 0 || cost < best {
			cm, cn, best = i, j, cost
		}
	}
	pl.nChunk = ceilDiv(nPanels, cn) * nr
	pl.mChunk = ceilDiv(mTiles, cm) * mr
	pl.cn = ceilDiv(g.n, pl.nChunk)
	pl.cm = ceilDiv(g.m, pl.mChunk)
	return pl
}

// workers returns how many workers g deserves.
func (g *gemmArgs) workers(procs int) int {
	work := g.m * g.n * g.k
	return max(1, min(procs, work/gemmMinWork))
}

// task computes the rectangle of C for task t, packing into buf (at least
// gemmBBlock floats). acc says whether C already holds beta·C to add onto.
func (g *gemmArgs) task(pl *gemmPlan, t int, acc bool, buf []float32) {
	mi, ni := t/pl.cn, t%pl.cn
	r0, c0 := mi*pl.mChunk, ni*pl.nChunk
	r1, c1 := min(g.m, r0+pl.mChunk), min(g.n, c0+pl.nChunk)
	if pl.bf != nil {
		g.blockBF16(pl, r0, r1, c0, c1, acc, buf)
		return
	}
	g.block(pl, r0, r1, c0, c1, acc, buf)
}

// block computes rows [r0,r1) × columns [c0,c1) of C. buf holds the
// packed B block and, after it, room for one packed A tile.
func (g *gemmArgs) block(pl *gemmPlan, r0, r1, c0, c1 int, acc bool, buf []float32) {
	buf, abuf := buf[:gemmBBlock], buf[gemmBBlock:]
	run := pl.kern.Run
	mr, nr := pl.kern.MR, pl.kern.NR
	lda, ldc := g.lda, g.ldc
	for jc := c0; jc < c1; jc += pl.nc {
		ncur := min(pl.nc, c1-jc)
		for pc := 0; pc < g.k; pc += pl.kc {
			kcur := min(pl.kc, g.k-pc)
			g.packB(&pl.kern, buf, pc, kcur, jc, ncur, nr)
			accNow := acc || pc > 0
			panel := kcur * nr
			tiles := ceilDiv(r1-r0, mr)
			for t0 := 0; t0 < tiles; t0 += gemmATiles {
				t1 := min(tiles, t0+gemmATiles)
				g0, _ := tileRows(r0, r1, mr, t0)
				if g.transA {
					g.packAT(abuf, pc, kcur, r0, r1, mr, t0, t1)
				}
				for t := t0; t < t1; t++ {
					i0, m := tileRows(r0, r1, mr, t)
					var a []float32
					rs, ks := lda, 1
					if g.transA {
						a, rs, ks = abuf[(i0-g0)*kcur:(i0-g0+m)*kcur], 1, m
					} else {
						a = g.a[i0*lda+pc:]
					}
					for q, j0 := 0, jc; j0 < jc+ncur; q, j0 = q+1, j0+nr {
						run(m, min(nr, jc+ncur-j0), kcur, a, rs, ks, buf[q*panel:(q+1)*panel], g.c[i0*ldc+j0:], ldc, accNow)
					}
				}
			}
		}
	}
}

// packB writes alpha·op(B)[pc:pc+kc, jc:jc+nc] into dst as NR-wide panels:
// panel q holds columns jc+q·NR …, k rows of NR floats each. Lanes past
// the last column of a short panel are left as they were: a micro-kernel
// never stores them, and lanes do not mix.
func (g *gemmArgs) packB(kern *simd.GemmKernel, dst []float32, pc, kc, jc, nc, nr int) {
	if g.b16 != nil {
		g.packBWiden(kern, dst, pc, kc, jc, nc, nr) // a bfloat16 B (gemmbf16.go)
		return
	}
	panel := kc * nr
	ldb := g.ldb
	if !g.transB {
		full := nc / nr * nr
		if pn := kern.PackN; pn != nil {
			if full > 0 {
				pn(dst, g.b[pc*ldb+jc:], ldb, panel, full/nr, kc)
			}
			if full < nc {
				for p := range kc {
					copy(dst[full/nr*panel+p*nr:], g.b[(pc+p)*ldb+jc+full:(pc+p)*ldb+jc+nc])
				}
			}
		}
		for p := 0; p < kc && kern.PackN == nil; p++ {
			row := g.b[(pc+p)*ldb+jc : (pc+p)*ldb+jc+nc]
			d := dst[p*nr:]
			// Whole panels as fixed-size array copies: a call to memmove
			// per 128 bytes would cost as much as the copy.
			switch nr {
			case 32:
				for j := 0; j < full; j += 32 {
					*(*[32]float32)(d[j/32*panel:]) = *(*[32]float32)(row[j:])
				}
			case 16:
				for j := 0; j < full; j += 16 {
					*(*[16]float32)(d[j/16*panel:]) = *(*[16]float32)(row[j:])
				}
			case 12:
				for j := 0; j < full; j += 12 {
					*(*[12]float32)(d[j/12*panel:]) = *(*[12]float32)(row[j:])
				}
			default:
				for j := 0; j < full; j += nr {
					copy(d[j/nr*panel:j/nr*panel+nr], row[j:j+nr])
				}
			}
			if full < nc {
				copy(d[full/nr*panel:], row[full:])
			}
		}
	} else {
		// Column j of op(B) is row j of B, contiguous in p.
		col := func(j, p0 int) {
			src := g.b[(jc+j)*ldb+pc+p0 : (jc+j)*ldb+pc+kc]
			d := dst[j/nr*panel+p0*nr+j%nr:]
			for p, v := range src {
				d[p*nr] = v
			}
		}
		j := 0
		if pt := kern.PackT16; pt != nil && nr%16 == 0 && kc >= 16 {
			k16 := kc / 16
			for ; j+16 <= nc; j += 16 {
				pt(dst[j/nr*panel+j%nr:], g.b[(jc+j)*ldb+pc:], ldb, nr, k16)
				if 16*k16 < kc {
					for jj := j; jj < j+16; jj++ {
						col(jj, 16*k16)
					}
				}
			}
		}
		for ; j < nc; j++ {
			col(j, 0)
		}
	}
	if g.alpha != 1 {
		d := dst[:ceilDiv(nc, nr)*panel]
		simd.K.Scale(d, g.alpha, d)
	}
}

// tileRows returns the first row and the height of tile t of rows
// [r0,r1): whole tiles of mr rows, except that the last two share what is
// left evenly, so 16 rows run as 8+8, not 12+4.
func tileRows(r0, r1, mr, t int) (i0, m int) {
	rows := r1 - r0
	tiles := ceilDiv(rows, mr)
	i0, m = r0+t*mr, min(mr, rows-t*mr)
	if rem := rows - (tiles-2)*mr; tiles >= 2 && t >= tiles-2 && rem < 2*mr {
		h := (rem + 1) / 2
		i0, m = r0+(tiles-2)*mr, h
		if t == tiles-1 {
			i0, m = i0+h, rem-h
		}
	}
	return i0, m
}

// packAT packs tiles [t0,t1) of a transposed A for depth block pc: tile t
// (rows i0…i0+m) lands at dst[(i0−g0)·kc:] as kc groups of m floats, g0
// being the first tile's first row. Read in place, a transposed tile steps
// lda floats per k; with lda a multiple of 1024 every step hits the same
// cache set and the tile thrashes. Packing several tiles at once reads A in
// contiguous runs of up to gemmATiles·MR floats.
func (g *gemmArgs) packAT(dst []float32, pc, kc, r0, r1, mr, t0, t1 int) {
	lda := g.lda
	var off, hs [gemmATiles]int // each tile's first row after g0, and height
	g0, _ := tileRows(r0, r1, mr, t0)
	for t := t0; t < t1; t++ {
		i0, m := tileRows(r0, r1, mr, t)
		off[t-t0], hs[t-t0] = i0-g0, m
	}
	nt := t1 - t0
	width := off[nt-1] + hs[nt-1]
	for p := range kc {
		row := g.a[(pc+p)*lda+g0 : (pc+p)*lda+g0+width]
		for t := range nt {
			o, m := off[t], hs[t]
			if m == 12 { // the AVX-512 tile, spelt out: no loop, no bounds checks
				s := row[o : o+12 : o+12]
				d := dst[o*kc+p*12 : o*kc+p*12+12 : o*kc+p*12+12]
				d[0], d[1], d[2], d[3], d[4], d[5] = s[0], s[1], s[2], s[3], s[4], s[5]
				d[6], d[7], d[8], d[9], d[10], d[11] = s[6], s[7], s[8], s[9], s[10], s[11]
				continue
			}
			src := row[o : o+m]
			dp := dst[o*kc+p*m : o*kc+p*m+m]
			for i, v := range src {
				dp[i] = v
			}
		}
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
