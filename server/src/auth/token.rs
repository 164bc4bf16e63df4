//! HS256 JWTs. Only HS256 is accepted, so `alg: none` and algorithm-confusion
//! tokens fail validation; expiry is always checked.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use campus_protocol::Role;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Claims carried by a Campus token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// User id, as a string (JWT `sub` is a StringOrURI).
    pub sub: String,
    /// Username at issue time (a rename invalidates the token).
    pub username: String,
    /// Role at issue time (authorization re-reads the user).
    pub role: Role,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Token id: logout revokes this one token (docs/security.md, "Sessions and tokens").
    pub jti: String,
    /// The user's token generation at issue time: a password change, disable
    /// or role change moves the user's generation on, refusing this token.
    #[serde(rename = "gen")]
    pub generation: i64,
}

impl Claims {
    /// The user id in `sub`.
    pub fn user_id(&self) -> Option<i64> {
        self.sub.parse().ok()
    }
}

/// Signing and verification keys derived from the configured secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("secret", &"<redacted>")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl TokenKeys {
    /// Keys for `secret`, issuing tokens valid for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl,
        }
    }

    /// Issue a token of the user's current `generation`; returns it with its
    /// expiry (seconds since the epoch).
    pub fn issue(
        &self,
        user_id: i64,
        username: &str,
        role: Role,
        generation: i64,
    ) -> Result<(String, u64), jsonwebtoken::errors::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let exp = now + self.ttl.as_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            username: username.to_string(),
            role,
            iat: now,
            exp,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            generation,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, exp))
    }

    /// Verify signature, algorithm and expiry (and that `jti` and `gen` are
    /// present: tokens issued before revocation existed are refused).
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.validate_exp = true;
        v.set_required_spec_claims(&["exp", "sub"]);
        Ok(decode::<Claims>(token, &self.decoding, &v)?.claims)
    }

    /// Token lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn issue_verify_and_reject_forgeries() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let (t, _) = keys.issue(7, "ann", Role::Student, 0).unwrap();
        assert_eq!(keys.verify(&t).unwrap().user_id(), Some(7));

        let other = TokenKeys::new(b"another-secret-another-secret-xx", Duration::from_secs(60));
        assert!(other.verify(&t).is_err(), "wrong signature");

        let payload = t.split('.').nth(1).unwrap();
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), payload);
        assert!(keys.verify(&none).is_err(), "alg none");

        // A correctly signed token without `jti`/`gen` (issued before tokens
        // were revocable) cannot be revoked, so it is refused.
        let old = serde_json::json!({"sub": "7", "username": "ann", "role": "student", "iat": 0, "exp": u64::MAX / 2});
        let old = encode(&Header::new(Algorithm::HS256), &old, &keys.encoding).unwrap();
        assert!(keys.verify(&old).is_err(), "token without jti and gen");
        let claims = keys.verify(&t).unwrap();
        assert_eq!(claims.jti.len(), 32);
        let (t2, _) = keys.issue(7, "ann", Role::Student, 3).unwrap();
        let c2 = keys.verify(&t2).unwrap();
        assert_ne!(c2.jti, claims.jti, "each token has its own id");
        assert_eq!(c2.generation, 3);

        let expired = TokenKeys::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(0));
        let (t, _) = expired.issue(7, "ann", Role::Student, 0).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert!(keys.verify(&t).is_err(), "expired");
    }
}
