mod common;

use labwright_router::{Backend, Nftables, compile};

#[test]
fn reference_renders() {
    let spec = common::reference();
    let rs = compile(&spec, 2).expect("compiles");
    println!("{}", Nftables::default().render(&rs));
    for c in labwright_router::cells(&spec, 2).expect("cells") {
        println!(
            "{:<11} {:<15} {:<10} {:<16} {:?} {} {} {:?}",
            c.from,
            c.to,
            c.ports_text(),
            c.path.to_string(),
            c.intent,
            c.decided_by,
            c.checked,
            c.note
        );
    }
}
