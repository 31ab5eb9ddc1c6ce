//! The commands' wing: what each `enclave` subcommand does, one file per
//! command family. The clap definitions are in `cli.rs`; the work itself is
//! in the core (library, ingest, rag, store, …). Nothing in the core imports
//! this module.

pub mod ask;
pub mod backup;
pub mod bench;
pub mod bench_serve;
pub mod demo;
pub mod doctor;
pub mod eval;
pub mod eval_answers;
pub mod extract;
pub mod ingest;
pub mod manage;
pub mod models;
pub mod pii;
pub mod search;
pub mod vectors;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command, EvalCommand};
use crate::config::Config;
use crate::library::Library;

pub fn run(cli: Cli) -> Result<ExitCode> {
    let mut config = Config::load(cli.config.as_deref())?;
    // The file in use, for commands that change it (`vectors migrate`).
    let config_file = cli
        .config
        .clone()
        .or_else(|| Some(PathBuf::from("enclave.toml")).filter(|p| p.is_file()));
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    init_logging(&config);
    match cli.command {
        Command::Ingest(args) => ingest::ingest(&config, args),
        Command::Search(args) => search::search(&config, args),
        Command::Docs(cmd) => search::docs(&config, cmd),
        Command::Extract(args) => extract::extract_cmd(&config, args),
        Command::Eval(EvalCommand::Retrieval(args)) => {
            eval::run(&config, args).map(|_| ExitCode::SUCCESS)
        }
        Command::Eval(EvalCommand::Ocr(args)) => eval::ocr::run(&config, args),
        Command::Eval(EvalCommand::Pii { file, json }) => eval::pii::run(file, json),
        Command::Pii(crate::cli::PiiCommand::Scan(args)) => pii::scan(&config, args),
        Command::Pii(crate::cli::PiiCommand::Policy(args)) => pii::policy(&config, args),
        Command::Pii(crate::cli::PiiCommand::Findings(args)) => pii::findings(&config, args),
        Command::Pii(crate::cli::PiiCommand::Reprocess(args)) => pii::reprocess(&config, args),
        Command::Eval(EvalCommand::Gate(args)) => {
            eval::gate::run(&config, args).map(|_| ExitCode::SUCCESS)
        }
        Command::Eval(EvalCommand::Answers(args)) => {
            eval_answers::run(&config, args).map(|_| ExitCode::SUCCESS)
        }
        Command::Bench(cmd) => bench::run(&config, cmd).map(|_| ExitCode::SUCCESS),
        Command::Demo(args) => demo::demo(&config, args),
        Command::Ask(args) => ask::ask(&config, args),
        Command::Chat(args) => ask::chat(&config, args),
        Command::Reindex => {
            let library = Library::reindex(&config)?;
            let (docs, chunks) = library.store().counts()?;
            println!("re-indexed {docs} documents, {chunks} chunks");
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => serve(config, args.listen),
        Command::User(cmd) => manage::user(&config, cmd),
        Command::Token(cmd) => manage::token(&config, cmd),
        Command::Grant(cmd) => manage::grant(&config, cmd),
        Command::Audit(cmd) => manage::audit(&config, cmd),
        Command::Doctor(args) => doctor::run(&config, args),
        Command::Models(cmd) => models::run(&config, cmd),
        Command::Backup(args) => backup::backup(&config, args),
        Command::Restore(args) => backup::restore(&config, args),
        Command::Vectors(cmd) => vectors::run(&config, config_file.as_deref(), cmd),
        Command::Config => {
            print!("{}", config.to_toml());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `enclave serve` (and the end of `enclave demo`): the web appliance, on
/// `listen` when given instead of `web.listen`.
pub fn serve(mut config: Config, listen: Option<String>) -> Result<ExitCode> {
    if let Some(listen) = listen {
        config.web.listen = listen;
    }
    crate::web::serve(&config)
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if config.log.json {
        builder.json().try_init()
    } else {
        builder.compact().try_init()
    };
    if config.rag.min_similarity.is_some() {
        tracing::warn!(
            "rag.min_similarity is no longer used: the evidence gate weighs cosine and term \
             coverage against rag.min_evidence; remove it from the config file"
        );
    }
}
