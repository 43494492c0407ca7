//! Embedding the panel store in your own program.
//!
//! ```text
//! cargo run -p example-embedded-store -- [DATABASE_URL]
//! ```
//! Without an argument it uses `sqlite:./example-panel.db` (created on first use). Any URL the
//! store accepts works: `postgres://...`, `mysql://...`.

use std::collections::BTreeSet;
use std::error::Error;

use hosting_core::model::{NewNode, NewTenant, NewUser, NewWebsite, NodeRole, Role};
use hosting_core::rbac::{Caller, Operator};
use hosting_core::types::{PhpVersion, WebServerKind};
use hosting_core::{PageRequest, PanelStore};
use hosting_db::{SqlStore, StoreOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite:./example-panel.db".to_owned());
    let store = SqlStore::open(&url, &StoreOptions::default()).await?;
    println!("store: {:?}", store.info());

    // Tenants and nodes are the operator's business; the embedder decides who that is.
    let op = Operator::assume();
    let suffix = std::process::id();
    let tenant = store
        .create_tenant(
            &op,
            NewTenant {
                name: format!("Example Hosting {suffix}").parse()?,
                slug: format!("example-{suffix}").parse()?,
                quotas: Default::default(),
            },
        )
        .await?;
    let admin = store
        .create_user_as_operator(
            &op,
            tenant.id,
            NewUser {
                role: Role::Admin,
                email: format!("admin-{suffix}@example.com").parse()?,
            },
        )
        .await?;
    let node = store
        .create_node(
            &op,
            NewNode {
                name: format!("web-{suffix}").parse()?,
                address: "127.0.0.1:8443".parse()?,
                roles: BTreeSet::from([NodeRole::Web]),
            },
        )
        .await?;

    // Everything inside a tenant goes through a Caller: the store scopes every query by it.
    let caller = Caller {
        tenant: tenant.id,
        user: admin.id,
        role: admin.role,
    };
    let site = store
        .create_website(
            &caller,
            NewWebsite {
                owner_id: admin.id,
                domain: format!("shop-{suffix}.example.com").parse()?,
                aliases: vec![format!("www.shop-{suffix}.example.com").parse()?],
                node_id: node.id,
                web_server: WebServerKind::Nginx,
                php_version: Some(PhpVersion::V8_2),
                system_user: format!("shop{suffix}").parse()?,
                document_root: "public_html".parse()?,
                settings: Default::default(),
            },
        )
        .await?;
    println!("created website {} ({})", site.id, site.domain);

    // Bad input never gets this far: it is refused while parsing, naming the field and rule.
    if let Err(e) = "evil.com; rm -rf /".parse::<hosting_core::types::DomainName>() {
        println!("refused: {e}");
    }

    let page = store.list_websites(&caller, PageRequest::default()).await?;
    for w in page.items {
        println!(
            "{} {} php={:?}",
            w.id,
            w.domain,
            w.php_version.map(|v| v.as_str())
        );
    }
    store.close().await;
    Ok(())
}
