//! `enclave demo`: the bundled corpus ingested, a first admin created and the
//! web server started, ready to log in.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::cli::DemoArgs;
use crate::config::Config;
use crate::ingest;
use crate::library::Library;
use crate::rag::retrieve::{self, Mode, Search};
use crate::store;

use super::ingest::{collect_files, describe};
use super::search::print_hit;

/// The demo's admin: created with a one-time password if there is no admin
/// yet, and granted the demo collection so it can ask questions at once.
fn demo_admin(config: &Config) -> Result<()> {
    use crate::accounts::{self, Grantee, PasswordOrigin, Role};
    use crate::audit::{Actor, Entry};
    let mut store = store::Store::open(&config.data_dir.join("enclave.sqlite"))?;
    store.set_audit(crate::library::audit_sink(config)?);
    if store.autocommit(store::accounts::admin_exists)? {
        println!("\nLog in with your admin account (or: enclave user passwd NAME).");
        return Ok(());
    }
    let password = accounts::generate_password();
    let hash = accounts::hash_password(&password)?;
    let actor = Actor::cli();
    store.transact(|tx| -> Result<_> {
        let id =
            store::accounts::add_user(tx, "admin", Role::Admin, &hash, PasswordOrigin::OneTime)?;
        let demo = store::accounts::ensure_collection(tx, "demo", config.pii.default_policy)?;
        store::accounts::grant(tx, demo, Grantee::User(id))?;
        let entry = Entry::new(&actor, "user.add", "user:admin")
            .detail(serde_json::json!({ "role": "admin", "granted": ["demo"] }));
        Ok(((), Some(entry)))
    })?;
    println!("\nCreated the first admin. User name: admin   One-time password: {password}");
    println!(
        "(Shown only now; you choose your own password at the first login. More accounts: \
         enclave user add NAME --role staff|admin|auditor)"
    );
    Ok(())
}

pub fn demo(config: &Config, args: DemoArgs) -> Result<ExitCode> {
    if !args.corpus.is_dir() {
        bail!(
            "demo corpus {} not found (run from the repository root)",
            args.corpus.display()
        );
    }
    let files = collect_files(std::slice::from_ref(&args.corpus))?;
    let mut library = Library::open(config)?;
    println!(
        "Ingesting {} demo documents into {} …",
        files.len(),
        config.data_dir.display()
    );
    for file in &files {
        let outcome = ingest::add_file(&mut library, file, "demo")?;
        println!("{}", describe(file, &outcome));
    }
    library.flush()?;
    let (docs, chunks) = library.store().counts()?;
    println!("\nLibrary: {docs} documents, {chunks} chunks searchable.\n");
    println!("Search: {:?}\n", args.query);
    let hits = retrieve::search(&library, &Search::new(&args.query, None, 3, Mode::Hybrid))?.hits;
    for (i, hit) in hits.iter().enumerate() {
        print_hit(i + 1, hit);
    }
    if args.no_serve {
        println!(
            "\nTry your own: cargo run --release -- search \"your question\"   (or: ingest PATH…, docs list)"
        );
        println!(
            "Ask for an answer with citations: cargo run --release -- ask \"{}\"",
            args.query
        );
        return Ok(ExitCode::SUCCESS);
    }
    drop(library); // the server takes the data-dir lock
    demo_admin(config)?;
    super::serve(config.clone(), args.listen)
}
