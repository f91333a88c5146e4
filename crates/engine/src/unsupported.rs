//! What the engine does not manage: a router VM it cannot seed (not the OPNsense
//! nano image) and the matrix only such a router would enforce, Tailscale routes
//! through a guest labwright does not bootstrap (the router's own). Each is held with
//! what the user can do meanwhile, so a plan never pretends they were handled; the
//! kinds that do manage them (`crate::router`) claim their elements first.

use labwright_spec::ElementKind as K;

use crate::action::Held;
use crate::plan::{PlanCx, PlanOut, kind_words};

pub(crate) fn plan(cx: &PlanCx<'_>, out: &mut PlanOut) {
    let spec = cx.spec;
    for e in cx.elements {
        // Children (router interfaces, matrix flows) are held with their parent.
        let child = matches!(e.kind, K::RouterInterface | K::PortForward | K::MatrixFlow);
        if child || e.phase > spec.phase || out.owned.contains(&e.path.to_string()) {
            continue;
        }
        let way_out = match e.kind {
            K::Router => {
                "install and configure the router VM by hand (docs/runbooks) and keep `router:` for the record"
            }
            K::Matrix => {
                "the segment matrix is enforced by the router: configure its rules by hand; `labwright firewall matrix` shows what they must allow"
            }
            K::TailscaleRoute => {
                "advertise the route from the guest (`tailscale up --advertise-routes=…`) and approve it in the Tailscale admin console"
            }
            _ => continue,
        };
        let mut h = Held::new(
            e.label.clone(),
            format!(
                "{} is not managed by labwright yet (not supported yet)",
                kind_words(e.kind)
            ),
            way_out,
        );
        h.elements.push(e.path.to_string());
        out.held.push(h);
    }
}
