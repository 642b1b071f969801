//! HTTP routing exactly as Spin routes: `/path` matches only itself, `/path/...` matches the path and
//! everything below it, `:name` matches one segment. When several match, the most specific wins:
//! more segments, then more literal segments, then an exact route over a wildcard.

use anyhow::{Result, bail};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// One route of spin.toml, bound to a component.
#[derive(Debug, Clone)]
pub struct Route {
    /// The pattern as written (`/api/bars/...`).
    pub pattern: String,
    /// Component id.
    pub component: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

/// What a request path matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    /// The route pattern.
    pub pattern: &'a str,
    /// Component id.
    pub component: &'a str,
    /// The part of the path below the route's fixed prefix (Spin's `spin-path-info`).
    pub path_info: String,
    /// Named segment values.
    pub params: Vec<(String, String)>,
}

impl Route {
    /// Parses a route pattern.
    pub fn parse(pattern: &str, component: &str) -> Result<Self> {
        if !pattern.starts_with('/') {
            bail!("route `{pattern}` must start with /");
        }
        let mut parts: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
        let wildcard = parts.last() == Some(&"...");
        if wildcard {
            parts.pop();
        }
        let mut segments = Vec::new();
        for p in parts {
            if p == "..." {
                bail!("route `{pattern}`: `...` may only end a route");
            }
            segments.push(match p.strip_prefix(':') {
                Some("") => bail!("route `{pattern}`: `:` needs a name"),
                Some(name) => Segment::Param(name.to_string()),
                None => Segment::Literal(p.to_string()),
            });
        }
        Ok(Route { pattern: pattern.to_string(), component: component.to_string(), segments, wildcard })
    }

    fn normalized(&self) -> String {
        let mut s: String = self
            .segments
            .iter()
            .map(|seg| match seg {
                Segment::Literal(l) => format!("/{l}"),
                Segment::Param(_) => "/:".to_string(),
            })
            .collect();
        if self.wildcard {
            s.push_str("/...");
        }
        s
    }

    fn matches(&self, parts: &[&str]) -> Option<Vec<(String, String)>> {
        if parts.len() < self.segments.len() || (!self.wildcard && parts.len() != self.segments.len()) {
            return None;
        }
        let mut params = Vec::new();
        for (seg, part) in self.segments.iter().zip(parts) {
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.clone(), part.to_string())),
            }
        }
        Some(params)
    }

    fn specificity(&self) -> (usize, usize, bool) {
        let literals = self.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count();
        (self.segments.len(), literals, !self.wildcard)
    }
}

/// All routes of the app.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Builds the router; two routes with the same shape are an error, as in Spin.
    pub fn new(routes: Vec<Route>) -> Result<Self> {
        for (i, a) in routes.iter().enumerate() {
            if let Some(b) = routes[..i].iter().find(|b| b.normalized() == a.normalized()) {
                bail!(
                    "duplicate route: `{}` (component {}) and `{}` (component {})",
                    a.pattern,
                    a.component,
                    b.pattern,
                    b.component
                );
            }
        }
        Ok(Router { routes })
    }

    /// The most specific route for a path, if any.
    pub fn route(&self, path: &str) -> Option<RouteMatch<'_>> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (route, params) = self
            .routes
            .iter()
            .filter_map(|r| r.matches(&parts).map(|p| (r, p)))
            .max_by_key(|(r, _)| r.specificity())?;
        let rest = &parts[route.segments.len()..];
        let path_info = if rest.is_empty() { String::new() } else { format!("/{}", rest.join("/")) };
        Some(RouteMatch { pattern: &route.pattern, component: &route.component, path_info, params })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        Router::new(routes.iter().map(|(p, c)| Route::parse(p, c).unwrap()).collect()).unwrap()
    }

    #[test]
    fn most_specific_route_wins() {
        let r = router(&[
            ("/...", "fallback"),
            ("/api/...", "api"),
            ("/api/models/...", "models"),
            ("/health", "health"),
            ("/api/models/:name", "one"),
        ]);
        assert_eq!(r.route("/health").unwrap().component, "health");
        assert_eq!(r.route("/health/x").unwrap().component, "fallback");
        assert_eq!(r.route("/api/bars").unwrap().component, "api");
        assert_eq!(r.route("/api/models").unwrap().component, "models");
        let m = r.route("/api/models/m1").unwrap();
        assert_eq!((m.component, m.params.clone()), ("one", vec![("name".to_string(), "m1".to_string())]));
        let m = r.route("/api/models/m1/versions/2").unwrap();
        assert_eq!((m.component, m.path_info.as_str()), ("models", "/m1/versions/2"));
        assert_eq!(r.route("/").unwrap().component, "fallback");
    }

    #[test]
    fn exact_route_matches_only_itself_and_wildcard_matches_its_root() {
        let r = router(&[("/health", "h"), ("/api/bars/...", "f")]);
        assert!(r.route("/healthz").is_none());
        assert!(r.route("/nope").is_none());
        assert_eq!(r.route("/api/bars").unwrap().component, "f");
        assert_eq!(r.route("/api/bars/AAPL").unwrap().path_info, "/AAPL");
    }

    #[test]
    fn duplicates_and_bad_patterns_are_refused() {
        assert!(Router::new(vec![Route::parse("/a/:x", "1").unwrap(), Route::parse("/a/:y", "2").unwrap()]).is_err());
        assert!(Route::parse("a", "1").is_err());
        assert!(Route::parse("/a/.../b", "1").is_err());
    }
}
