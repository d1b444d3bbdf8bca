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
// atomic counter. Columns are split first (that costs nothing: each B
// element is still packed once); rows only when there are too few column
// panels to go round, at the price of packing those B panels once per row
// block.
const (
	gemmKC     = 512     // deepest K block: a 12×512 A tile is 24 KiB of a 48 KiB L1
	gemmBBlock = 1 << 18 // floats in a packed B block (1 MiB, half of a 2 MiB L2)
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
	kc, nc         int // depth of a K block; columns of a packed B block (a multiple of NR)
	mChunk, nChunk int // rows and columns of C per task (multiples of MR and NR)
	cm, cn         int // tasks along rows and columns
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

	mTiles, nPanels := ceilDiv(g.m, mr), ceilDiv(g.n, nr)
	t := 1
	if w > 1 {
		t = w * gemmTasksPerWorker
	}
	cn := min(nPanels, t)
	cm := 1
	if cn < t {
		cm = min(mTiles, ceilDiv(t, cn))
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
	g.block(pl, r0, r1, c0, c1, acc, buf)
}

// block computes rows [r0,r1) × columns [c0,c1) of C.
func (g *gemmArgs) block(pl *gemmPlan, r0, r1, c0, c1 int, acc bool, buf []float32) {
	run := pl.kern.Run
	mr, nr := pl.kern.MR, pl.kern.NR
	lda := g.k
	if g.transA {
		lda = g.m
	}
	n := g.n
	for jc := c0; jc < c1; jc += pl.nc {
		ncur := min(pl.nc, c1-jc)
		for pc := 0; pc < g.k; pc += pl.kc {
			kcur := min(pl.kc, g.k-pc)
			g.packB(buf, pc, kcur, jc, ncur, nr)
			accNow := acc || pc > 0
			panel := kcur * nr
			// Tiles of near-equal height: 16 rows run as 8+8, not 12+4.
			tiles := ceilDiv(r1-r0, mr)
			for t := range tiles {
				i0 := r0 + t*(r1-r0)/tiles
				m := r0 + (t+1)*(r1-r0)/tiles - i0
				aoff, rs, ks := i0*lda+pc, lda, 1
				if g.transA {
					aoff, rs, ks = pc*lda+i0, 1, lda
				}
				a := g.a[aoff:]
				for q, j0 := 0, jc; j0 < jc+ncur; q, j0 = q+1, j0+nr {
					run(m, min(nr, jc+ncur-j0), kcur, a, rs, ks, buf[q*panel:(q+1)*panel], g.c[i0*n+j0:], n, accNow)
				}
			}
		}
	}
}

// packB writes alpha·op(B)[pc:pc+kc, jc:jc+nc] into dst as NR-wide panels:
// panel q holds columns jc+q·NR …, k rows of NR floats each. Lanes past
// the last column of a short panel are left as they were: a micro-kernel
// never stores them, and lanes do not mix.
func (g *gemmArgs) packB(dst []float32, pc, kc, jc, nc, nr int) {
	alpha := g.alpha
	panel := kc * nr
	if !g.transB {
		ldb := g.n
		full := nc / nr * nr
		for p := range kc {
			row := g.b[(pc+p)*ldb+jc : (pc+p)*ldb+jc+nc]
			d := dst[p*nr:]
			if alpha != 1 {
				for j := 0; j < nc; j += nr {
					src := row[j:min(j+nr, nc)]
					simd.K.Scale(d[j/nr*panel:j/nr*panel+len(src)], alpha, src)
				}
				continue
			}
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
		return
	}
	ldb := g.k
	for j := range nc {
		src := g.b[(jc+j)*ldb+pc : (jc+j)*ldb+pc+kc]
		q, l := j/nr, j%nr
		d := dst[q*panel+l : q*panel+panel]
		if alpha == 1 {
			for p, v := range src {
				d[p*nr] = v
			}
		} else {
			for p, v := range src {
				d[p*nr] = alpha * v
			}
		}
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
