//! Validation of a whole tree before it becomes the served (last-known-good) version.

use crate::cipher::{Decryptor, cipher_body};
use crate::error::ValidationError;
use crate::tree::ConfigTree;

impl ConfigTree {
    /// Every problem that would make Spring fail or serve `invalid.*` for some request: files
    /// that do not parse and, with a decryptor, `{cipher}` values that do not decrypt.
    /// An empty list means the tree is safe to promote.
    pub fn validate(&self, decryptor: Option<&dyn Decryptor>) -> Vec<ValidationError> {
        let mut errors: Vec<ValidationError> = self
            .parse_errors()
            .map(|e| ValidationError {
                file: e.path.clone(),
                key: None,
                message: format!("{}:{}: {}", e.line, e.column, e.message),
            })
            .collect();
        if let Some(decryptor) = decryptor {
            for (path, doc) in self.documents() {
                for (key, value) in doc.source.iter() {
                    let Some(body) = cipher_body(value) else {
                        continue;
                    };
                    if let Err(e) = decryptor.decrypt(body) {
                        errors.push(ValidationError {
                            file: path.to_owned(),
                            key: Some(key.clone()),
                            message: format!("cannot decrypt {key}: {e}"),
                        });
                    }
                }
            }
        }
        errors
    }
}
