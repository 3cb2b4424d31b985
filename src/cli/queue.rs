//! `herald queue ls|show|delete`: requests to the daemon and their human or JSON rendering.

use super::{QueueCommand, SuppressionCommand};
use crate::admin::{Request, client};
use serde_json::Value;
use std::path::Path;

pub async fn run(cmd: &QueueCommand, data_dir: &Path, json: bool) -> anyhow::Result<()> {
    let req = match cmd {
        QueueCommand::Ls => Request::QueueList,
        QueueCommand::Show { id } => Request::QueueShow { id: id.clone() },
        QueueCommand::Delete { id } => Request::QueueDelete { id: id.clone() },
        QueueCommand::Retry { id, .. } => Request::QueueRetry { id: id.clone() },
    };
    let data = client::request(data_dir, &req).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&data)?);
        return Ok(());
    }
    match cmd {
        QueueCommand::Ls => print!("{}", render_list(&data)),
        QueueCommand::Show { .. } => print!("{}", render_show(&data)),
        QueueCommand::Delete { id } => println!("{id}: deleted"),
        QueueCommand::Retry { .. } => {
            println!("{} deliveries rescheduled for now", data["rescheduled"])
        }
    }
    Ok(())
}

/// `herald suppression ls|add|rm`
pub async fn suppression(
    cmd: &SuppressionCommand,
    data_dir: &Path,
    json: bool,
) -> anyhow::Result<()> {
    let req = match cmd {
        SuppressionCommand::Ls => Request::SuppressionList,
        SuppressionCommand::Add {
            address,
            scope,
            reason,
        } => Request::SuppressionAdd {
            address: address.clone(),
            scope: scope.clone(),
            reason: reason.clone(),
        },
        SuppressionCommand::Rm { address } => Request::SuppressionRemove {
            address: address.clone(),
        },
    };
    let data = client::request(data_dir, &req).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&data)?);
        return Ok(());
    }
    match cmd {
        SuppressionCommand::Ls => {
            for e in data.as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    s(e, "address"),
                    s(e, "scope"),
                    s(e, "source"),
                    s(e, "created"),
                    s(e, "reason")
                );
            }
        }
        SuppressionCommand::Add { .. } => {
            println!("{} suppressed ({})", s(&data, "address"), s(&data, "scope"))
        }
        SuppressionCommand::Rm { address } => println!("{address} removed"),
    }
    Ok(())
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// A `postqueue -p` style listing.
pub fn render_list(data: &Value) -> String {
    let empty = Vec::new();
    let entries = data.as_array().unwrap_or(&empty);
    if entries.is_empty() {
        return "Mail queue is empty\n".into();
    }
    let mut out = format!(
        "{:<17} {:>9} {:<21} {}\n",
        "-Queue ID-", "--Size--", "----Arrival Time----", "-Sender/Recipient-------"
    );
    let mut total = 0;
    for e in entries {
        let size = e["size"].as_u64().unwrap_or(0);
        total += size;
        let sender = if s(e, "sender").is_empty() {
            "<>"
        } else {
            s(e, "sender")
        };
        out += &format!(
            "{:<17} {:>9} {:<21} {}\n",
            s(e, "id"),
            size,
            s(e, "created"),
            sender
        );
        for r in e["recipients"].as_array().unwrap_or(&empty) {
            let mut line = format!(
                "{} ({}, {} attempts)",
                s(r, "address"),
                s(r, "state"),
                r["attempts"].as_u64().unwrap_or(0)
            );
            if let Some(reply) = r["last_reply"].as_str() {
                line += &format!(" {reply}");
            }
            out += &format!("{:49} {line}\n", "");
        }
    }
    out += &format!(
        "-- {} Kbytes in {} Request{}.\n",
        total.div_ceil(1024),
        entries.len(),
        if entries.len() == 1 { "" } else { "s" }
    );
    out
}

fn render_show(e: &Value) -> String {
    let mut out = format!(
        "id: {}\nsender: {}\nmessage-id: {}\nsize: {}\ncreated: {}\n",
        s(e, "id"),
        s(e, "sender"),
        e["message_id"].as_str().unwrap_or("-"),
        e["size"],
        s(e, "created")
    );
    for r in e["recipients"].as_array().into_iter().flatten() {
        out += &format!(
            "recipient: {} state={} attempts={} next={} last_reply={}\n",
            s(r, "address"),
            s(r, "state"),
            r["attempts"],
            s(r, "next_attempt"),
            r["last_reply"].as_str().unwrap_or("-")
        );
    }
    out += "\n";
    out += s(e, "body");
    out
}
