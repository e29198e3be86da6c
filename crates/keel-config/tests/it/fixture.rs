//! The fixture repository behind the golden snapshots: several profiles, multi-document YAML,
//! a `.properties` next to a `.yml`, a search path, YAML 1.1 booleans and a `{cipher}` value.

use crate::support::Repo;

/// Spring-made vector: key `foo`, plaintext `foo`.
pub const SPRING_CIPHER: &str = "762c11829d517b203ac94a0180f1950b133b83cde34296549d8fed611a9b2fb5";

pub const APPLICATION_YML: &str = "\
info:
  description: shared defaults
feature:
  enabled: on
  legacy: no
servers:
  - a.example.com
  - b.example.com
---
spring:
  config:
    activate:
      on-profile: prod
feature:
  enabled: off
servers:
  - prod.example.com
";

pub const APPLICATION_PROPERTIES: &str = "\
shared.from=properties
info.owner=platform team
";

pub const FOO_YML: &str = "\
foo:
  name: Foo
  count: 3
  ratio: 1.5
  answer: yes
  empty:
  tags: [a, b]
greeting: hello ${foo.name}
";

pub const FOO_DEV_YML: &str = "\
foo:
  name: Foo Dev
  tags: [dev]
";

pub const FOO_DEV_PROPERTIES: &str = "\
foo.count=5
";

pub const FOO_DB_YML: &str = "\
db:
  url: jdbc:postgresql://db/foo
";

pub const SERVICE_BAR_YML: &str = "\
bar:
  from: search path
  enabled: off
";

pub const NGINX_CONF: &str = "server_name ${foo.name};\n";
pub const NGINX_DEV_CONF: &str = "server_name dev;\n";

/// Creates the fixture repository with one commit on `main`.
pub fn repo() -> Repo {
    let repo = Repo::new();
    let secret = format!("secret:\n  password: '{{cipher}}{SPRING_CIPHER}'\n");
    repo.commit(
        &[
            ("application.yml", APPLICATION_YML),
            ("application.properties", APPLICATION_PROPERTIES),
            ("foo.yml", FOO_YML),
            ("foo-dev.yml", FOO_DEV_YML),
            ("foo-dev.properties", FOO_DEV_PROPERTIES),
            ("foo-db.yml", FOO_DB_YML),
            ("services/bar/bar.yml", SERVICE_BAR_YML),
            ("secret.yml", &secret),
            ("nginx.conf", NGINX_CONF),
            ("nginx-dev.conf", NGINX_DEV_CONF),
            ("README.md", "not configuration\n"),
        ],
        "fixture",
    );
    repo
}
