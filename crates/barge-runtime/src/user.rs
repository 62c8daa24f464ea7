//! `USER` / `-u`: `name`, `uid`, `name:group`, `uid:gid`, looked up in the
//! image's own `/etc/passwd` and `/etc/group`.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    #[error("invalid user {0:?}: uids and gids must be in range 0-2147483647")]
    OutOfRange(String),
}

/// runc's range for ids: above it, -1 and friends mean "unchanged" to the kernel.
const MAX_ID: u32 = i32::MAX as u32;

struct Passwd<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = Passwd<'_>> {
    passwd.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        Some(Passwd {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

/// (name, gid, members) of each line of a group file.
fn group_entries(group: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    group.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        Some((
            f[0],
            f[2].parse().ok()?,
            f[3].split(',').filter(|m| !m.is_empty()).collect(),
        ))
    })
}

/// A group by name (an entry of the image's /etc/group) or number
/// (needing no entry), as `-u USER:GROUP` and `--group-add` take it.
pub fn group_id(g: &str, group: &str) -> Result<u32, UserError> {
    let numeric = g.parse::<u32>().ok();
    let id = match group_entries(group).find(|(n, id, _)| match numeric {
        Some(gid) => *id == gid,
        None => *n == g,
    }) {
        Some((_, id, _)) => id,
        None => numeric.ok_or_else(|| UserError::NoGroup(g.to_string()))?,
    };
    if id > MAX_ID {
        return Err(UserError::OutOfRange(g.to_string()));
    }
    Ok(id)
}

/// Resolves a user spec the way docker (runc's libcontainer/user) does:
/// numeric ids need no passwd entry, names must have one; the primary group
/// comes from passwd unless given; supplementary groups from group membership.
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<ResolvedUser, UserError> {
    let spec = if spec.is_empty() { "0" } else { spec };
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    // A numeric user matches only the uid column, a name only the name
    // column (runc's rule): a passwd line named "1000" with uid 0 must not
    // turn `-u 1000` into root.
    let numeric = user.parse::<u32>().ok();
    let entry = passwd_entries(passwd).find(|p| match numeric {
        Some(uid) => p.uid == uid,
        None => p.name == user,
    });
    let (uid, mut gid, name, home) = match (&entry, numeric) {
        (Some(p), _) => (p.uid, p.gid, p.name.to_string(), p.home.to_string()),
        (None, Some(uid)) => (uid, 0, String::new(), "/".to_string()),
        (None, None) => return Err(UserError::NoUser(user.to_string())),
    };
    if let Some(g) = grp {
        gid = group_id(g, group)?;
    }
    if uid > MAX_ID || gid > MAX_ID {
        return Err(UserError::OutOfRange(spec.to_string()));
    }
    let mut additional: Vec<u32> = Vec::new();
    if grp.is_none() && !name.is_empty() {
        // As runc (and so docker and podman): the groups that are the
        // primary one or list the user, in /etc/group's order.
        for (_, id, members) in group_entries(group) {
            if (id == gid || members.contains(&name.as_str())) && !additional.contains(&id) {
                additional.push(id);
            }
        }
    }
    additional.retain(|g| *g <= MAX_ID);
    // As runc: with no memberships, the primary group is the supplementary list.
    if additional.is_empty() {
        additional.push(gid);
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\nuser:x:1000:1000::/home/user:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwww:x:33:\nuser:x:1000:\naudio:x:29:user,www\nvideo:x:44:user\n";

    #[test]
    fn names_ids_and_groups() {
        let r = resolve("user", PASSWD, GROUP).unwrap();
        assert_eq!(
            (r.uid, r.gid, r.additional_gids.clone(), r.home.as_str()),
            (1000, 1000, vec![1000, 29, 44], "/home/user")
        );
        assert_eq!(resolve("", PASSWD, GROUP).unwrap().uid, 0);
        let r = resolve("33:video", PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid), (33, 44));
        assert_eq!(r.additional_gids, [44]);
        let r = resolve("4242:4343", PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (4242, 4343, "/"));
        assert_eq!(
            resolve("nobody", PASSWD, GROUP),
            Err(UserError::NoUser("nobody".into()))
        );
        assert_eq!(
            resolve("user:nogroup", PASSWD, GROUP),
            Err(UserError::NoGroup("nogroup".into()))
        );
    }

    #[test]
    fn numeric_ids_never_match_names() {
        // A hostile image names a root line "1000" and a root group "1000".
        let passwd = "1000:x:0:0:evil:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n";
        let group = "1000:x:0:\nuser:x:1000:\n";
        let r = resolve("1000", passwd, group).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (1000, 1000, "/home/user"));
        let r = resolve("1000:1000", passwd, group).unwrap();
        assert_eq!((r.uid, r.gid), (1000, 1000));
        // Absent from passwd: used as is, never root.
        let r = resolve("4000", "4000:x:0:0::/:/bin/sh\n", "").unwrap();
        assert_eq!((r.uid, r.gid), (4000, 0));
        assert_eq!(resolve("4000:4000", "", "4000:x:0:\n").unwrap().gid, 4000);
        // -1 would mean "unchanged" to setresuid: refused, as runc does.
        for bad in ["4294967295", "0:4294967295", "2147483648"] {
            assert!(matches!(resolve(bad, "", ""), Err(UserError::OutOfRange(_))), "{bad}");
        }
        let huge = "big:x:4294967295:0::/:/bin/sh\n";
        assert!(matches!(resolve("big", huge, ""), Err(UserError::OutOfRange(_))));
    }
}
