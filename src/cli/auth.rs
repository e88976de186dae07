//! `footfall auth`: makes tokens for the auth file, and hashes existing ones.
//! The token is printed once; only its hash goes into the file.

use clap::{Args, Subcommand};
use std::io::Read;

use crate::AppError;
use crate::auth::{RoleName, hash_token, new_token};

#[derive(Args, Debug)]
pub struct AuthArgs {
    #[command(subcommand)]
    pub command: AuthCommand,
}

#[derive(Subcommand, Debug)]
pub enum AuthCommand {
    /// Makes a new random token: prints it (give it to its holder, once)
    /// on stderr, and the `[[token]]` entry to append to the auth file on
    /// stdout.
    Token {
        /// Who holds it (shown in the file, never secret).
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleName,
        /// A sponsor's exhibitor id from the venue file; repeat for several.
        #[arg(long = "exhibitor")]
        exhibitors: Vec<String>,
    },
    /// Reads a token on stdin and prints the SHA-256 the auth file stores.
    Hash,
}

pub fn run(args: AuthArgs) -> Result<(), AppError> {
    match args.command {
        AuthCommand::Token {
            name,
            role,
            exhibitors,
        } => {
            if (role == RoleName::Sponsor) == exhibitors.is_empty() {
                return Err(AppError::Config(
                    "a sponsor needs --exhibitor, and only a sponsor has exhibitors".into(),
                ));
            }
            let token = new_token();
            eprintln!("token for {name} (shown once, keep it secret): {token}");
            print!("{}", entry(&name, role, &exhibitors, &hash_token(&token)));
            Ok(())
        }
        AuthCommand::Hash => {
            let mut token = String::new();
            std::io::stdin()
                .read_to_string(&mut token)
                .map_err(AppError::io("cannot read the token on stdin"))?;
            if token.trim().is_empty() {
                return Err(AppError::Config("no token on stdin".into()));
            }
            println!("{}", hash_token(&token));
            Ok(())
        }
    }
}

fn entry(name: &str, role: RoleName, exhibitors: &[String], hash: &str) -> String {
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let role = match role {
        RoleName::Scanner => "scanner",
        RoleName::Analyst => "analyst",
        RoleName::Organizer => "organizer",
        RoleName::Sponsor => "sponsor",
        RoleName::Monitor => "monitor",
    };
    let mut out = format!(
        "\n[[token]]\nname = {}\nsha256 = \"{hash}\"\nrole = \"{role}\"\n",
        quote(name)
    );
    if !exhibitors.is_empty() {
        let list: Vec<String> = exhibitors.iter().map(|e| quote(e)).collect();
        out.push_str(&format!("exhibitors = [{}]\n", list.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_loads_back() {
        let venue = footfall_schemas::venue::reference();
        let exhibitor = venue.stands[0].exhibitor_id.clone();
        let text = entry(
            "Coop \"A\"",
            RoleName::Sponsor,
            &[exhibitor],
            &hash_token("t"),
        ) + &entry("ops", RoleName::Monitor, &[], &hash_token("u"));
        let auth = crate::auth::Auth::parse(&text, &venue).unwrap();
        assert_eq!(auth.len(), 2);
    }
}
