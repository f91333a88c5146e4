//! A layered layout made for this picture, in Rust (no Graphviz at run time): five
//! fixed columns (who comes in, the node, bridges and pools, guests and datasets,
//! storage entries), the tallest column stacked, every other box placed at the mean
//! height of the boxes it is linked to, then pushed down where boxes would overlap.
//! Deterministic (the committed picture is compared byte for byte) and linear in the
//! number of boxes and lines (the 1000-guest report stays fast).

use std::collections::BTreeMap;

use super::{EdgeKind, Graph, Node, NodeKind};

/// Width of one character of detail text (12 px sans-serif), for box widths.
const CHAR_W: f64 = 6.7;
/// Width of one character of a box's title (13 px bold).
const TITLE_CHAR_W: f64 = 7.8;
pub const LINE: f64 = 15.0;
pub const PAD: f64 = 9.0;
const MAX_CHARS: usize = 46;
const MAX_DETAIL: usize = 5;
const VGAP: f64 = 16.0;
/// Vertical room per line arriving on one side of a box.
pub const PORT_GAP: f64 = 15.0;
pub const HGAP: f64 = 190.0;
pub const MARGIN: f64 = 20.0;
const LANES: usize = 5;

/// Where one box sits.
#[derive(Clone, Copy, Debug, Default)]
pub struct Placed {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub lane: usize,
}

impl Placed {
    pub fn cy(&self) -> f64 {
        self.y + self.h / 2.0
    }
}

pub struct Layout {
    /// By node index.
    pub boxes: Vec<Placed>,
    /// (x, width, lane) of each non-empty column.
    pub columns: Vec<(f64, f64, usize)>,
    pub width: f64,
    pub height: f64,
}

fn cut(s: &str) -> String {
    if s.chars().count() <= MAX_CHARS {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(MAX_CHARS - 1).collect();
        t.push('…');
        t
    }
}

/// The lines a box shows: its title and at most [`MAX_DETAIL`] detail lines, each cut
/// to [`MAX_CHARS`] (the `<title>` tooltip has them whole).
pub fn box_lines(n: &Node) -> (String, Vec<String>) {
    let title = cut(&format!("{}{}", n.label, n.state.suffix()));
    let mut detail: Vec<String> = n.detail.iter().take(MAX_DETAIL).map(|d| cut(d)).collect();
    if n.detail.len() > MAX_DETAIL {
        detail.pop();
        detail.push(format!("… {} more", n.detail.len() - MAX_DETAIL + 1));
    }
    (title, detail)
}

fn size(n: &Node) -> (f64, f64) {
    let (title, detail) = box_lines(n);
    let tw = title.chars().count() as f64 * TITLE_CHAR_W;
    let dw = detail
        .iter()
        .map(|d| d.chars().count() as f64 * CHAR_W)
        .fold(0.0, f64::max);
    let w = (tw.max(dw) + 2.0 * PAD).clamp(110.0, 340.0);
    let h = 2.0 * PAD + LINE + 2.0 + LINE * detail.len() as f64;
    (w.ceil(), h)
}

pub fn layout(g: &Graph, top: f64) -> Layout {
    let index: BTreeMap<&str, usize> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let mut neighbours: Vec<Vec<usize>> = vec![Vec::new(); g.nodes.len()];
    for e in g.drawn_edges() {
        if let (Some(&a), Some(&b)) = (index.get(e.from.as_str()), index.get(e.to.as_str())) {
            neighbours[a].push(b);
            neighbours[b].push(a);
        }
    }
    let mut lanes: Vec<Vec<usize>> = vec![Vec::new(); LANES];
    for (i, n) in g.nodes.iter().enumerate() {
        lanes[n.kind.lane()].push(i);
    }
    // Guests in the order of the bridge they sit on, so their lines cross less.
    let rank: BTreeMap<usize, usize> = lanes[2].iter().enumerate().map(|(r, &i)| (i, r)).collect();
    let mut nic_rank = vec![usize::MAX; g.nodes.len()];
    for e in g.drawn_edges().filter(|e| e.kind == EdgeKind::Nic) {
        if let (Some(&a), Some(&b)) = (index.get(e.from.as_str()), index.get(e.to.as_str()))
            && let Some(&r) = rank.get(&a)
        {
            nic_rank[b] = nic_rank[b].min(r);
        }
    }
    lanes[3].sort_by_key(|&i| {
        (
            g.nodes[i].kind == NodeKind::Dataset,
            nic_rank[i],
            // Stable: the spec's order otherwise.
            i,
        )
    });

    // A box is tall enough for the lines on its busiest side to arrive apart, so
    // their labels (set next to the box) do not overlap.
    let mut per_side: BTreeMap<(usize, bool), usize> = BTreeMap::new();
    for e in g.drawn_edges() {
        if let (Some(&a), Some(&b)) = (index.get(e.from.as_str()), index.get(e.to.as_str())) {
            let (la, lb) = (g.nodes[a].kind.lane(), g.nodes[b].kind.lane());
            *per_side.entry((a, la <= lb)).or_default() += 1;
            *per_side.entry((b, lb < la)).or_default() += 1;
        }
    }
    let mut boxes: Vec<Placed> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let (w, h) = size(n);
            let busiest = per_side
                .get(&(i, false))
                .copied()
                .unwrap_or(0)
                .max(per_side.get(&(i, true)).copied().unwrap_or(0));
            Placed {
                w,
                h: h.max(busiest as f64 * PORT_GAP + 12.0),
                lane: n.kind.lane(),
                ..Placed::default()
            }
        })
        .collect();

    // Columns left to right, empty ones left out.
    let mut columns = Vec::new();
    let mut x = MARGIN;
    for (l, members) in lanes.iter().enumerate() {
        if members.is_empty() {
            continue;
        }
        let w = members.iter().map(|&i| boxes[i].w).fold(0.0, f64::max);
        for &i in members {
            boxes[i].x = x;
            boxes[i].w = w;
        }
        columns.push((x, w, l));
        x += w + HGAP;
    }
    let width = x - HGAP + MARGIN;

    // The tallest column is stacked; the others follow their neighbours, nearest
    // columns first.
    let height_of = |l: usize| -> f64 { lanes[l].iter().map(|&i| boxes[i].h + VGAP).sum() };
    let anchor = (0..LANES)
        .max_by(|a, b| height_of(*a).total_cmp(&height_of(*b)).then(b.cmp(a)))
        .unwrap_or(3);
    let mut placed = vec![false; g.nodes.len()];
    let mut order: Vec<usize> = (0..LANES).collect();
    order.sort_by_key(|l| (l.abs_diff(anchor), *l));
    for l in order {
        let mut bottom = top - VGAP;
        for &i in &lanes[l] {
            let ys: Vec<f64> = neighbours[i]
                .iter()
                .filter(|&&j| placed[j])
                .map(|&j| boxes[j].cy())
                .collect();
            let want = if l == anchor || ys.is_empty() {
                bottom + VGAP
            } else {
                ys.iter().sum::<f64>() / ys.len() as f64 - boxes[i].h / 2.0
            };
            let y = want.max(bottom + VGAP).max(top);
            boxes[i].y = y;
            bottom = y + boxes[i].h;
        }
        for &i in &lanes[l] {
            placed[i] = true;
        }
    }
    let height = boxes.iter().map(|b| b.y + b.h).fold(top, f64::max) + MARGIN;
    Layout {
        boxes,
        columns,
        width,
        height,
    }
}

/// A cubic curve between two points, leaving and entering horizontally.
pub struct Curve {
    pub from: (f64, f64),
    pub c1: (f64, f64),
    pub c2: (f64, f64),
    pub to: (f64, f64),
}

impl Curve {
    pub fn between(from: (f64, f64), to: (f64, f64), out_right: bool, in_left: bool) -> Curve {
        let dx = ((to.0 - from.0).abs() / 2.0).max(50.0);
        let c1 = (if out_right { from.0 + dx } else { from.0 - dx }, from.1);
        let c2 = (if in_left { to.0 - dx } else { to.0 + dx }, to.1);
        Curve { from, c1, c2, to }
    }
    pub fn at(&self, t: f64) -> (f64, f64) {
        let u = 1.0 - t;
        let f = |a: f64, b: f64, c: f64, d: f64| {
            u * u * u * a + 3.0 * u * u * t * b + 3.0 * u * t * t * c + t * t * t * d
        };
        (
            f(self.from.0, self.c1.0, self.c2.0, self.to.0),
            f(self.from.1, self.c1.1, self.c2.1, self.to.1),
        )
    }
    /// The point of the curve whose x is `x` (the curves here are monotonic in x).
    pub fn at_x(&self, x: f64) -> (f64, f64) {
        let (mut lo, mut hi) = (0.0, 1.0);
        let rising = self.to.0 >= self.from.0;
        for _ in 0..30 {
            let mid = (lo + hi) / 2.0;
            let px = self.at(mid).0;
            if (px < x) == rising {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        self.at((lo + hi) / 2.0)
    }
    pub fn path(&self) -> String {
        format!(
            "M{:.1},{:.1} C{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}",
            self.from.0,
            self.from.1,
            self.c1.0,
            self.c1.1,
            self.c2.0,
            self.c2.1,
            self.to.0,
            self.to.1
        )
    }
}
