//! Shared inputs of the benchmarks: the configuration (one mailbox, 50 tags with aliases), the
//! same configuration as SQL for the engine benchmark, and messages generated in code.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use std::path::Path;

use ticketmilter::model::{CompanyRef, ContactRef, Envelope, Facts, TagRef};
use ticketmilter::pipeline::tags::TagDef;
use ticketmilter::pipeline::{ConfRows, Snapshot};
use ticketmilter::store::{self, Store, StoreOptions};

/// The mailbox every benchmark message is sent to.
pub const MAILBOX: &str = "support@msp.example";
/// The sender: a known contact (Alice, of Example Corp).
pub const SENDER: &str = "alice@example.com";

/// 50 tags with their aliases (labels and aliases of two characters or fewer never match).
pub const TAGS: &[(&str, &[&str])] = &[
    ("Printer", &["Drucker", "printing", "Druckauftrag"]),
    ("Network", &["Netzwerk", "LAN", "switch"]),
    ("VPN", &["Fernzugriff", "remote access"]),
    ("Wi-Fi", &["WLAN", "wireless", "WiFi"]),
    ("Password", &["Passwort", "Kennwort", "password reset"]),
    ("Backup", &["Datensicherung", "restore"]),
    ("Outlook", &["Exchange", "Postfach"]),
    ("Monitoring", &["Alarm", "alert"]),
    ("Firewall", &["FortiGate", "Sophos"]),
    ("Server", &["Fileserver", "Dateiserver"]),
    ("Laptop", &["Notebook"]),
    ("Monitor", &["Bildschirm", "display"]),
    ("Scanner", &["Scan", "scannen"]),
    ("Teams", &["MS Teams", "Microsoft Teams"]),
    ("SharePoint", &["OneDrive"]),
    ("Phone", &["Telefon", "VoIP", "softphone"]),
    ("Licence", &["Lizenz", "license"]),
    ("Onboarding", &["new user", "neuer Mitarbeiter"]),
    ("Offboarding", &["leaver", "Austritt"]),
    ("Antivirus", &["Virus", "Malware", "Defender"]),
    ("Phishing", &["Spam", "suspicious mail"]),
    ("DNS", &["nameserver", "domain"]),
    ("Certificate", &["Zertifikat", "SSL", "TLS"]),
    ("Active Directory", &["AD account", "Domänenkonto"]),
    ("MFA", &["2FA", "Authenticator", "two-factor"]),
    ("Windows Update", &["Patch", "Updates"]),
    ("ERP", &["SAP", "DATEV"]),
    ("CRM", &["Salesforce"]),
    ("Database", &["Datenbank", "SQL Server"]),
    ("Website", &["Webseite", "homepage"]),
    ("Hardware", &["Defekt", "broken"]),
    ("Keyboard", &["Tastatur"]),
    ("Mouse", &["Maus"]),
    ("Docking Station", &["Dock", "Dockingstation"]),
    ("Citrix", &["Terminal Server", "RDP", "Remote Desktop"]),
    ("Shared Drive", &["Netzlaufwerk", "network drive", "file share"]),
    ("Permissions", &["Berechtigung", "access rights"]),
    ("Calendar", &["Kalender"]),
    ("Mobile", &["Smartphone", "iPhone", "Android"]),
    ("Tablet", &["iPad"]),
    ("Projector", &["Beamer"]),
    ("Camera", &["Webcam", "Kamera"]),
    ("Headset", &["Kopfhörer"]),
    ("Storage", &["NAS", "SAN", "Speicher"]),
    ("Power", &["UPS", "USV", "Stromausfall"]),
    ("Internet", &["Router", "DSL", "Glasfaser"]),
    ("Urgent", &["dringend", "ASAP", "critical"]),
    ("Invoice", &["Rechnung", "billing"]),
    ("Order", &["Bestellung", "purchase"]),
    ("Training", &["Schulung"]),
];

/// Tag ids start here (the engine benchmark writes the same ids into SQL).
const FIRST_TAG_ID: i64 = 100;

/// The instant every benchmark message is received at.
pub fn clock() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap()
}

pub fn envelope() -> Envelope {
    let mut e = Envelope::new([MAILBOX]);
    e.sender = SENDER.to_string();
    e.queue_id = Some("4Y7Kq2Xz9Qz1".to_string());
    e.received_at = clock();
    e
}

pub fn tag_defs() -> Vec<TagDef> {
    TAGS.iter()
        .enumerate()
        .map(|(n, (label, aliases))| TagDef {
            tag: TagRef {
                id: FIRST_TAG_ID + n as i64,
                label: label.to_string(),
            },
            active: true,
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
        })
        .collect()
}

/// A migrated SQLite database in `dir`, loaded with `directory_sql`.
pub fn fresh_store(dir: &Path, opts: StoreOptions) -> Store {
    let path = dir.join("bench.db");
    let store = Store::open(path.to_str().expect("utf-8 path"), opts).expect("open");
    store.migrate().expect("migrate");
    store
        .write(|c| store::execute_script(c, &directory_sql()))
        .expect("directory");
    store
}

/// The compiled configuration: one mailbox, 50 tags with aliases. The mailbox comes from the
/// store (as `Engine` sees it, defaults resolved), so the pure and the engine benchmarks decide
/// with the same configuration.
pub fn snapshot() -> Snapshot {
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = fresh_store(dir.path(), StoreOptions::default())
        .read(store::conf::load)
        .expect("load the configuration");
    assert_eq!(loaded.mailboxes.len(), 1, "one mailbox");
    assert_eq!(loaded.tags.len(), TAGS.len(), "the tags of directory_sql");
    let snapshot = Snapshot::build(ConfRows {
        mailboxes: loaded.mailboxes,
        tags: tag_defs(),
        public_domains: loaded.public_domains,
        settings: vec![("time_zone".to_string(), "UTC".to_string())],
        refs: loaded.refs,
        exclusions: Vec::new(),
        rules: Vec::new(),
        problems: Vec::new(),
        ..ConfRows::default()
    });
    assert!(snapshot.problems.is_empty(), "{:?}", snapshot.problems);
    assert_eq!(snapshot.tags.len(), TAGS.len());
    snapshot
}

/// What the store would find for the benchmark sender: a known contact, nothing else.
pub fn facts_contact_found() -> Facts {
    Facts {
        contact: Some(ContactRef {
            id: 1,
            name: "Alice Example".to_string(),
            company: CompanyRef {
                id: 1,
                name: "Example Corp".to_string(),
            },
        }),
        ..Facts::default()
    }
}

fn sql_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The same configuration and a small directory as SQL, for `store::execute_script`.
pub fn directory_sql() -> String {
    let mut sql = String::from(
        "INSERT INTO settings (key, value) VALUES ('time_zone', 'UTC');\n\
         INSERT INTO companies (id, name, web_domain, active, created_at) VALUES\n\
         \x20   (1, 'Example Corp', 'example.com', TRUE, '2026-01-01 00:00:00'),\n\
         \x20   (2, 'MSP Internal', 'msp.example', TRUE, '2026-01-01 00:00:00'),\n\
         \x20   (3, 'Acme GmbH', 'acme.example', TRUE, '2026-01-01 00:00:00');\n\
         INSERT INTO contacts (id, company_id, name, email1, email2, email3, active, created_at) VALUES\n\
         \x20   (1, 1, 'Alice Example', 'alice@example.com', NULL, NULL, TRUE, '2026-01-01 00:00:00'),\n\
         \x20   (2, 1, 'Bob Example', 'bob@example.com', NULL, NULL, TRUE, '2026-01-01 00:00:00'),\n\
         \x20   (3, 3, 'Bernd Acme', 'bernd@acme.example', NULL, NULL, TRUE, '2026-01-01 00:00:00');\n\
         INSERT INTO resources (id, name, email, active, created_at) VALUES\n\
         \x20   (1, 'Tina Tech', 'tina@msp.example', TRUE, '2026-01-01 00:00:00');\n\
         INSERT INTO mailboxes (id, address, name, active, note_visibility, unknown_sender,\n\
         \x20                      fallback_company_id, created_at) VALUES\n\
         \x20   (1, 'support@msp.example', 'Support', TRUE, 'all', 'fallback', 2, '2026-01-01 00:00:00');\n",
    );
    for def in tag_defs() {
        sql.push_str(&format!(
            "INSERT INTO tags (id, label, active) VALUES ({}, {}, TRUE);\n",
            def.tag.id,
            sql_quote(&def.tag.label)
        ));
        for alias in &def.aliases {
            sql.push_str(&format!(
                "INSERT INTO tag_aliases (tag_id, alias) VALUES ({}, {});\n",
                def.tag.id,
                sql_quote(alias)
            ));
        }
    }
    sql
}

const HEADER_TEMPLATE: &str = "\
Return-Path: <alice@example.com>\r
Delivered-To: support@msp.example\r
Received: from mail.example.com (mail.example.com [198.51.100.25])\r
\tby mx1.msp.example (Postfix) with ESMTPS id 4Y7Kq2Xz9Qz1\r
\tfor <support@msp.example>; Fri, 27 Nov 2026 10:00:00 +0100 (CET)\r
Received: from [192.168.10.23] (unknown [203.0.113.7])\r
\t(Authenticated sender: alice@example.com)\r
\tby mail.example.com (Postfix) with ESMTPSA id 8C1A21F4B2\r
\tfor <support@msp.example>; Fri, 27 Nov 2026 09:59:58 +0100 (CET)\r
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com;\r
\ts=mail2026; t=1795769998;\r
\tbh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r
\th=Date:From:To:Cc:Subject:From;\r
\tb=Vb4Yc0Yp3mQe1oFh3k5rT0h2yZbJ0xvWm9sLq2fN8Kc7uPz1dG4aR6tE5wS3jH0i\r
\t Q8nX2bV7cM1lK9gF4dS6aP0oI3uY5tR8eW2qZ7xC1vB4nM6kJ9hG3fD5sA0lP2o\r
\t I8uY4tR7eW1qA3zX6cV9bN2mK5jH8gF0dS4aP7oI1uY3tR6eW9qZ2xC5vB8nM1k\r
\t J4hG7fD0sA3lP6oI9uY2tR5eW8qZ1xC4vB7nM0kJ3hG6fD9sA2lP5oI8uY1tR4=\r
Authentication-Results: mx1.msp.example;\r
\tdkim=pass (2048-bit key; unprotected) header.d=example.com header.i=@example.com header.b=Vb4Yc0Yp;\r
\tspf=pass (mx1.msp.example: domain of alice@example.com designates 198.51.100.25 as permitted sender) smtp.mailfrom=alice@example.com;\r
\tdmarc=pass (p=quarantine dis=none) header.from=example.com\r
Message-ID: <{MID}>\r
Date: Fri, 27 Nov 2026 09:59:58 +0100\r
MIME-Version: 1.0\r
User-Agent: Mozilla Thunderbird\r
Content-Language: de-DE\r
From: Alice Example <alice@example.com>\r
To: Support <support@msp.example>\r
Cc: Bob Example <bob@example.com>\r
Subject: =?UTF-8?Q?Drucker_im_2=2E_OG_druckt_nicht_=E2=80=93_und_VPN_sehr_langsam?=\r
Content-Type: {CTYPE}\r
";

const TEXT_BODY: &str = "\
Hallo Support-Team,\r
\r
seit heute Morgen druckt der Drucker im 2. OG (Raum 2.14, HP LaserJet M479) nicht mehr.\r
Die Druckaufträge bleiben in der Warteschlange hängen und nach ein paar Minuten erscheint\r
die Meldung \"Fehler beim Drucken\". Ein Neustart des Geräts hat leider nichts geändert,\r
und auch die Kollegen aus der Buchhaltung können nicht mehr drucken.\r
\r
Außerdem ist die VPN-Verbindung aus dem Homeoffice seit Montag sehr langsam. Das Öffnen\r
von Dateien auf dem Netzlaufwerk dauert teilweise mehrere Minuten, und Outlook meldet\r
immer wieder \"Verbindung zu Microsoft Exchange wird versucht\". Im Büro funktioniert\r
alles normal, es scheint also nur den Fernzugriff zu betreffen.\r
\r
Betroffene Geräte:\r
  - Notebook PC-{N} (Windows 11, zuletzt aktualisiert am 24.11.)\r
  - Drucker PRN-2OG-01\r
\r
Könnt ihr euch das bitte heute noch anschauen? Wir müssen bis Freitag die Rechnungen\r
für den Monatsabschluss drucken, das ist also ziemlich dringend.\r
\r
Falls ihr per Fernwartung auf meinen Rechner zugreifen wollt, bin ich ab 13 Uhr\r
erreichbar. Mein Passwort habe ich letzte Woche geändert, daran sollte es nicht liegen.\r
\r
Vielen Dank und viele Grüße\r
Alice\r
\r
-- \r
Alice Example\r
Teamleitung Buchhaltung\r
Example Corp GmbH | Musterstraße 12 | 12345 Musterstadt\r
Tel. +49 30 1234567-89 | Fax +49 30 1234567-99\r
https://www.example.com\r
\r
Example Corp GmbH, Sitz der Gesellschaft: Musterstadt, Registergericht: Amtsgericht\r
Musterstadt HRB 12345, Geschäftsführer: Max Mustermann, Erika Musterfrau.\r
Diese E-Mail enthält vertrauliche und/oder rechtlich geschützte Informationen. Wenn Sie\r
nicht der richtige Adressat sind oder diese E-Mail irrtümlich erhalten haben,\r
informieren Sie bitte sofort den Absender und vernichten Sie diese Mail. Das unerlaubte\r
Kopieren sowie die unbefugte Weitergabe dieser Mail ist nicht gestattet.\r
";

const HTML_BODY: &str = "\
<html><head><meta http-equiv=\"content-type\" content=\"text/html; charset=UTF-8\"></head>\r
<body><p>Hallo Support-Team,</p>\r
<p>seit heute Morgen druckt der <b>Drucker im 2. OG</b> (Raum 2.14) nicht mehr. Die\r
Druckaufträge bleiben in der Warteschlange hängen.</p>\r
<p>Außerdem ist die <b>VPN-Verbindung</b> aus dem Homeoffice sehr langsam; Outlook meldet\r
immer wieder Verbindungsabbrüche zu Exchange.</p>\r
<ul><li>Notebook PC-{N}</li><li>Drucker PRN-2OG-01</li></ul>\r
<p>Vielen Dank und viele Grüße<br>Alice</p>\r
<div class=\"moz-signature\">-- <br>Alice Example<br>Teamleitung Buchhaltung</div>\r
</body></html>\r
";

fn message_id(n: usize) -> String {
    format!("{n:08}.{:016x}@mail.example.com", (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn headers(n: usize, content_type: &str) -> String {
    // Distinct subjects too: the same sender and subject again would be a duplicate of the
    // first ticket (appended as a note), which is not what the benchmark measures.
    HEADER_TEMPLATE
        .replace("{MID}", &message_id(n))
        .replace("{CTYPE}", content_type)
        .replace("langsam?=", &format!("langsam_PC-{n:05}?="))
}

/// A ~4 KB message: realistic headers, text/plain with a small text/html alternative.
/// `n` makes the Message-ID (and an asset number in the body) distinct.
pub fn small_message(n: usize) -> Vec<u8> {
    let boundary = format!("------------b0Und4ry{n:08}");
    let pc = format!("{:05}", n % 100_000);
    let mut m = headers(n, &format!("multipart/alternative;\r\n boundary=\"{boundary}\""));
    m.push_str("\r\nThis is a multi-part message in MIME format.\r\n");
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: text/plain; charset=UTF-8; format=flowed\r\n");
    m.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
    m.push_str(&TEXT_BODY.replace("{N}", &pc));
    m.push_str(&format!("\r\n--{boundary}\r\n"));
    m.push_str("Content-Type: text/html; charset=UTF-8\r\n");
    m.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
    m.push_str(&HTML_BODY.replace("{N}", &pc));
    m.push_str(&format!("\r\n--{boundary}--\r\n"));
    m.into_bytes()
}

/// Size of the binary attachment of the large message.
pub const ATTACHMENT_BYTES: usize = 740 * 1024;

/// Deterministic incompressible bytes (xorshift64*).
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Base64 with CRLF after every 76 characters, as mail user agents write it.
fn base64_lines(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len() * 4 / 3 + data.len() / 57 * 2 + 8);
    for line in data.chunks(57) {
        for chunk in line.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out.push_str("\r\n");
    }
    out
}

/// A ~1 MB message: the same headers and text body, plus a ~740 KB binary PDF attachment in
/// base64.
pub fn large_message(n: usize) -> Vec<u8> {
    let boundary = format!("------------m1x3dB0und{n:08}");
    let pc = format!("{:05}", n % 100_000);
    let mut m = headers(n, &format!("multipart/mixed;\r\n boundary=\"{boundary}\""));
    m.push_str("\r\nThis is a multi-part message in MIME format.\r\n");
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: text/plain; charset=UTF-8; format=flowed\r\n");
    m.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
    m.push_str(&TEXT_BODY.replace("{N}", &pc));
    m.push_str(&format!("\r\n--{boundary}\r\n"));
    m.push_str("Content-Type: application/pdf; name=\"Scan_Drucker_Fehlerseite.pdf\"\r\n");
    m.push_str("Content-Disposition: attachment; filename=\"Scan_Drucker_Fehlerseite.pdf\"\r\n");
    m.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
    m.push_str(&base64_lines(&pseudo_random(ATTACHMENT_BYTES, 0x5eed + n as u64)));
    m.push_str(&format!("--{boundary}--\r\n"));
    m.into_bytes()
}
