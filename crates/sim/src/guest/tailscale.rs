//! The simulated `tailscale` CLI of a guest.

use serde_json::json;

use crate::state::Vm;

/// `--name=value` or `--name value` from a tailscale command line.
pub(super) fn flag_value(args: &[String], name: &str) -> Option<String> {
    let long = format!("--{name}");
    args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix(&format!("{long}="))
            .map(str::to_string)
            .or_else(|| (a == &long).then(|| args.get(i + 1).cloned()).flatten())
    })
}

/// The simulated `tailscale` CLI: `up` needs a readable auth key that looks like one,
/// `set` needs a joined node, `status [--json]` reports what was joined.
pub(super) fn run_tailscale(vm: &mut Vm, args: &[String]) -> (i64, String, String) {
    let routes = |v: Option<String>| -> Vec<String> {
        v.map(|r| {
            r.split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
    };
    match args.first().map(String::as_str) {
        Some("status") => {
            let json = args.iter().any(|a| a == "--json");
            match (&vm.guest.tailscale, json) {
                (Some(ts), true) => (
                    0,
                    json!({"BackendState": "Running",
                           "Self": {"HostName": ts.hostname, "Online": true,
                                    "PrimaryRoutes": ts.routes}})
                    .to_string()
                        + "\n",
                    String::new(),
                ),
                (Some(ts), false) => (
                    0,
                    format!("100.64.0.2  {}  linux  -\n", ts.hostname),
                    String::new(),
                ),
                (None, true) => (
                    0,
                    json!({"BackendState": "NeedsLogin"}).to_string() + "\n",
                    String::new(),
                ),
                (None, false) => (1, "Logged out.\n".into(), String::new()),
            }
        }
        Some("up") => {
            let key = flag_value(args, "authkey").unwrap_or_default();
            let value = match key.strip_prefix("file:") {
                Some(path) => vm.guest.files.get(path).cloned().unwrap_or_default(),
                None => key,
            };
            if !value.trim().starts_with("tskey-") {
                return (
                    1,
                    String::new(),
                    "backend error: invalid key: unable to validate API key\n".into(),
                );
            }
            let hostname = flag_value(args, "hostname")
                .or_else(|| vm.guest.hostname.clone())
                .unwrap_or_default();
            vm.guest.tailscale = Some(crate::state::TailscaleState {
                hostname,
                routes: routes(flag_value(args, "advertise-routes")),
                accept_routes: flag_value(args, "accept-routes").is_some_and(|v| v == "true"),
            });
            (0, String::new(), String::new())
        }
        Some("set") => {
            let Some(ts) = vm.guest.tailscale.as_mut() else {
                return (1, String::new(), "not logged in\n".into());
            };
            if let Some(h) = flag_value(args, "hostname") {
                ts.hostname = h;
            }
            if let Some(r) = flag_value(args, "advertise-routes") {
                ts.routes = routes(Some(r));
            }
            if let Some(a) = flag_value(args, "accept-routes") {
                ts.accept_routes = a == "true";
            }
            (0, String::new(), String::new())
        }
        _ => (0, String::new(), String::new()),
    }
}
