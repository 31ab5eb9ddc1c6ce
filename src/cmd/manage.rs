//! Command-line administration: users, groups, grants and the audit log.
//! These open the database directly (not the library), so they work while
//! `enclave serve` runs; every change is audited as `cli:<os user>`.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::accounts::{self, Grantee, PasswordOrigin};
use crate::audit::{self, Actor, Entry};
use crate::cli::{AuditCommand, GrantCommand, TokenCommand, UserCommand};
use crate::config::Config;
use crate::store::{self, Store};

fn open_store(config: &Config) -> Result<Store> {
    let mut store = Store::open(&config.data_dir.join("enclave.sqlite"))?;
    store.set_audit(crate::library::audit_sink(config)?);
    Ok(store)
}

/// The password from standard input (kept as it is), or a generated one
/// that its holder must replace at their first login.
fn read_password(from_stdin: bool) -> Result<(String, PasswordOrigin)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let pw = line.trim_end_matches(['\r', '\n']).to_string();
        accounts::validate_password(&pw)?;
        Ok((pw, PasswordOrigin::Chosen))
    } else {
        Ok((accounts::generate_password(), PasswordOrigin::OneTime))
    }
}

fn print_one_time(password: &str, origin: PasswordOrigin) {
    if origin == PasswordOrigin::OneTime {
        println!(
            "One-time password (shown only now; it must be changed at the first login): {password}"
        );
    }
}

pub fn user(config: &Config, cmd: UserCommand) -> Result<ExitCode> {
    let mut store = open_store(config)?;
    let actor = Actor::cli();
    match cmd {
        UserCommand::Add {
            username,
            role,
            password_stdin,
        } => {
            accounts::validate_username(&username)?;
            let (password, origin) = read_password(password_stdin)?;
            let hash = accounts::hash_password(&password)?;
            let id = store.transact(|tx| -> Result<_> {
                let id = store::accounts::add_user(tx, &username, role, &hash, origin)?;
                let entry = Entry::new(&actor, "user.add", format!("user:{username}"))
                    .detail(serde_json::json!({ "role": role.as_str() }));
                Ok((id, Some(entry)))
            })?;
            println!("Created {} {username} (id {id}).", role.as_str());
            print_one_time(&password, origin);
        }
        UserCommand::List { json } => {
            let users = store.autocommit(store::accounts::users)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                for u in users {
                    println!(
                        "{:>4}  {:<24} {:<8} {}{}",
                        u.id,
                        u.username,
                        u.role.as_str(),
                        u.created_at,
                        if u.disabled { "  (disabled)" } else { "" }
                    );
                }
            }
        }
        UserCommand::Disable { username } => set_disabled(&mut store, &actor, &username, true)?,
        UserCommand::Enable { username } => set_disabled(&mut store, &actor, &username, false)?,
        UserCommand::Role { username, role } => {
            store.transact(|tx| -> Result<_> {
                let u = store::accounts::user_by_name(tx, &username)?;
                store::accounts::set_role(tx, u.id, role)?;
                let entry = Entry::new(&actor, "user.role", format!("user:{username}"))
                    .detail(serde_json::json!({ "from": u.role.as_str(), "to": role.as_str() }));
                Ok(((), Some(entry)))
            })?;
            println!(
                "{username} is now {}; their sessions were ended.",
                role.as_str()
            );
        }
        UserCommand::Passwd {
            username,
            password_stdin,
        } => {
            let (password, origin) = read_password(password_stdin)?;
            let hash = accounts::hash_password(&password)?;
            store.transact(|tx| -> Result<_> {
                let u = store::accounts::user_by_name(tx, &username)?;
                store::accounts::set_password(tx, u.id, &hash, origin)?;
                Ok((
                    (),
                    Some(Entry::new(
                        &actor,
                        "user.password",
                        format!("user:{username}"),
                    )),
                ))
            })?;
            println!("Password changed for {username}; their sessions were ended.");
            print_one_time(&password, origin);
        }
        UserCommand::Join { username, group } => {
            store.transact(|tx| -> Result<_> {
                let u = store::accounts::user_by_name(tx, &username)?;
                let g = store::accounts::ensure_group(tx, &group)?;
                store::accounts::add_member(tx, g, u.id)?;
                let entry = Entry::new(&actor, "group.join", format!("group:{group}"))
                    .detail(serde_json::json!({ "user": username }));
                Ok(((), Some(entry)))
            })?;
            println!("{username} is in group {group}.");
        }
        UserCommand::Leave { username, group } => {
            store.transact(|tx| -> Result<_> {
                let u = store::accounts::user_by_name(tx, &username)?;
                let g = store::accounts::group_id(tx, &group)?;
                store::accounts::remove_member(tx, g, u.id)?;
                let entry = Entry::new(&actor, "group.leave", format!("group:{group}"))
                    .detail(serde_json::json!({ "user": username }));
                Ok(((), Some(entry)))
            })?;
            println!("{username} left group {group}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn set_disabled(store: &mut Store, actor: &Actor, username: &str, disabled: bool) -> Result<()> {
    store.transact(|tx| -> Result<_> {
        let u = store::accounts::user_by_name(tx, username)?;
        store::accounts::set_disabled(tx, u.id, disabled)?;
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        Ok((
            (),
            Some(Entry::new(actor, action, format!("user:{username}"))),
        ))
    })?;
    if disabled {
        println!("{username} is disabled; their sessions were ended.");
    } else {
        println!("{username} is enabled.");
    }
    Ok(())
}

pub fn token(config: &Config, cmd: TokenCommand) -> Result<ExitCode> {
    let mut store = open_store(config)?;
    let actor = Actor::cli();
    let now = crate::time::unix_now();
    match cmd {
        TokenCommand::Create {
            user,
            scopes,
            collections,
            expires,
            name,
        } => {
            let request = store::tokens::TokenRequest {
                username: user,
                name,
                scopes,
                collections: (!collections.is_empty()).then_some(collections),
                expires,
                created_by: actor.name.clone(),
            };
            let issued = store.transact(|tx| -> Result<_> {
                match store::tokens::issue(tx, &request, now)? {
                    Ok(issued) => {
                        let entry =
                            store::tokens::audit_entry(&actor, "token.create", &issued.token);
                        Ok((Ok(issued), Some(entry)))
                    }
                    Err(message) => Ok((Err(message), None)),
                }
            })?;
            let issued = issued.map_err(anyhow::Error::msg)?;
            let t = &issued.token;
            eprintln!(
                "Token {} for {} (scopes {}; collections {}; expires {}). The secret is shown only now:",
                t.id,
                t.username,
                accounts::tokens::scopes_text(&t.scopes),
                t.collections
                    .as_ref()
                    .map_or("all granted".into(), |c| c.join(", ")),
                t.expires_at.map_or("never".into(), |e| format!(
                    "in {} days",
                    (e - now) / 86_400
                )),
            );
            println!("{}", issued.secret);
        }
        TokenCommand::List { json } => {
            let tokens = store.autocommit(store::tokens::list)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                for t in tokens {
                    let state = if t.revoked_at.is_some() {
                        "revoked"
                    } else if t.live_at(now) {
                        "active"
                    } else {
                        "expired"
                    };
                    println!(
                        "{:>4}  {:<8} {:<16} {:<20} {:<16} {:<10}… last used {}",
                        t.id,
                        state,
                        t.username,
                        t.name,
                        accounts::tokens::scopes_text(&t.scopes),
                        t.prefix,
                        t.last_used_at
                            .map_or("never".into(), |at| format!("{} s ago", now - at)),
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            store.transact(|tx| -> Result<_> {
                let token = store::tokens::get(tx, id)?
                    .with_context(|| format!("no token {id} (see `enclave token list`)"))?;
                if !store::tokens::revoke(tx, id, now)? {
                    bail!("token {id} was revoked already");
                }
                let entry = store::tokens::audit_entry(&actor, "token.revoke", &token);
                Ok(((), Some(entry)))
            })?;
            println!("Revoked token {id}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn grant(config: &Config, cmd: GrantCommand) -> Result<ExitCode> {
    let mut store = open_store(config)?;
    let actor = Actor::cli();
    match cmd {
        GrantCommand::Add(args) => {
            store.transact(|tx| -> Result<_> {
                let collection = store::accounts::ensure_collection(
                    tx,
                    &args.collection,
                    config.pii.default_policy,
                )?;
                let (to, target) = match (&args.user, &args.group) {
                    (Some(user), _) => (
                        Grantee::User(store::accounts::user_by_name(tx, user)?.id),
                        format!("user:{user}"),
                    ),
                    (None, Some(group)) => (
                        Grantee::Group(store::accounts::ensure_group(tx, group)?),
                        format!("group:{group}"),
                    ),
                    (None, None) => bail!("name a --user or a --group"),
                };
                store::accounts::grant(tx, collection, to)?;
                let entry = Entry::new(&actor, "grant.add", target)
                    .detail(serde_json::json!({ "collection": args.collection }));
                Ok(((), Some(entry)))
            })?;
            println!("Granted collection {}.", args.collection);
        }
        GrantCommand::List { json } => {
            let grants = store.autocommit(store::accounts::grants)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&grants)?);
            } else {
                for g in grants {
                    println!("{:>4}  {:<24} {} {}", g.id, g.collection, g.kind, g.grantee);
                }
            }
        }
        GrantCommand::Remove { id } => {
            let removed = store.transact(|tx| -> Result<_> {
                let removed = store::accounts::revoke(tx, id)?;
                let entry = removed.as_ref().map(|g| {
                    Entry::new(&actor, "grant.remove", format!("{}:{}", g.kind, g.grantee))
                        .detail(serde_json::json!({ "collection": g.collection }))
                });
                Ok((removed, entry))
            })?;
            match removed {
                Some(g) => println!(
                    "Removed grant of {} to {} {}.",
                    g.collection, g.kind, g.grantee
                ),
                None => bail!("no grant with id {id}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn audit(config: &Config, cmd: AuditCommand) -> Result<ExitCode> {
    match cmd {
        AuditCommand::Key => {
            print_audit_key(config)?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Export { format, output } => {
            let mut store = open_store(config)?;
            let key = store
                .audit_sink()
                .map(|s| s.key.clone())
                .context("audit key not loaded")?;
            let rows = match &output {
                Some(path) => {
                    let file = std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    let mut out = std::io::BufWriter::new(file);
                    store.export_audit(&key, format, &mut out)?
                }
                None => {
                    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                    store.export_audit(&key, format, &mut out)?
                }
            };
            let entry = Entry::new(&Actor::cli(), "audit.export", "audit_log")
                .detail(serde_json::json!({ "format": format.extension(), "rows": rows }));
            store.record(entry)?;
            if let Some(path) = output {
                eprintln!("Exported {rows} audit rows to {}.", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify {
            file,
            db,
            public_key,
            checkpoint_every,
            allow_open_tail,
            witness,
            json,
        } => {
            let (pinned, head_key) = match public_key {
                Some(k) => (
                    audit::key::parse_public_keys(&k).map_err(anyhow::Error::msg)?,
                    None,
                ),
                None => audit::key::expected_keys(&config.audit.public_key_file, &config.data_dir)?,
            };
            let rules = audit::verify::Rules {
                pinned_keys: pinned,
                head_key,
                // An export may come from a server with another cadence:
                // checked only when given.
                checkpoint_every: checkpoint_every.or(db.then_some(config.audit.checkpoint_every)),
                allow_open_tail,
                witness: match witness {
                    Some(w) => Some(
                        audit::witness::Witness::from_setting(&w)
                            .context("--witness needs \"journal\" or a file")?
                            .read()?,
                    ),
                    None => None,
                },
            };
            let report = if db {
                let store = Store::open(&config.data_dir.join("enclave.sqlite"))?;
                store.verify_audit(rules)?
            } else {
                let path = file.context("name an export file, or pass --db")?;
                let f = std::fs::File::open(&path)
                    .with_context(|| format!("opening {}", path.display()))?;
                let mut reader = std::io::BufReader::new(f);
                audit::export::verify_file(&mut reader, rules)?
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report);
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// The public key on stdout (for pinning), the rest on stderr.
fn print_audit_key(config: &Config) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let key = audit::AuditKey::load_or_create(&config.data_dir)?;
    println!("{}", key.public_hex());
    let path = config.data_dir.join(audit::key::FILE_NAME);
    let mode = std::fs::metadata(&path)
        .map(|m| {
            format!(
                "{:o}",
                std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777
            )
        })
        .unwrap_or_else(|e| e.to_string());
    eprintln!("Private key: {} (mode {mode})", path.display());
    let pin = &config.audit.public_key_file;
    let pinned = if pin.as_os_str().is_empty() {
        "not pinned (audit.public_key_file is not set)".to_string()
    } else if !pin.exists() {
        format!("not pinned yet: {} does not exist", pin.display())
    } else {
        match audit::key::parse_public_keys(&pin.to_string_lossy()) {
            Ok(keys) if keys.contains(&key.public_hex()) => format!("pinned in {}", pin.display()),
            Ok(_) => format!(
                "{} pins other keys: after a restore onto a new machine, check the key change \
                 `enclave audit verify --db` prints, then add this key: enclave audit key >> {}",
                pin.display(),
                pin.display()
            ),
            Err(e) => format!("the pinned copy is unreadable: {e}"),
        }
    };
    eprintln!("{pinned}");
    Ok(())
}

fn print_report(report: &audit::verify::Report) {
    let mut out = std::io::stdout().lock();
    match &report.failure {
        None => {
            let _ = writeln!(
                out,
                "OK: {} rows, chain intact, {} signed checkpoints; head row {} ({}).",
                report.rows, report.checkpoints, report.head_id, report.head_hash
            );
            if let Some(n) = report.witnessed {
                let _ = writeln!(out, "{n} checkpoints match the witness.");
            }
            if report.unsigned_tail > 0 {
                let _ = writeln!(
                    out,
                    "{} rows after the last checkpoint are chained but not yet signed.",
                    report.unsigned_tail
                );
            }
        }
        Some(f) => {
            let _ = writeln!(out, "FAILED at row {}: {}", f.row, f.reason);
            let _ = writeln!(out, "({} rows before it verified.)", report.rows);
        }
    }
    for change in &report.key_changes {
        let _ = writeln!(
            out,
            "Key change at row {} ({}): {} → {}{}",
            change.row,
            change.at,
            change.previous_key,
            change.key,
            if change.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", change.reason)
            }
        );
    }
    if let Some(k) = &report.public_key {
        let _ = writeln!(out, "Signing key: {k}");
    }
}
