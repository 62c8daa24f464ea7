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
}

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

/// Resolves a user spec the way docker (runc's libcontainer/user) does:
/// numeric ids need no passwd entry, names must have one; the primary group
/// comes from passwd unless given; supplementary groups from group membership.
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<ResolvedUser, UserError> {
    let spec = if spec.is_empty() { "0" } else { spec };
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entry = passwd_entries(passwd).find(|p| p.name == user || user.parse::<u32>().ok() == Some(p.uid));
    let (uid, mut gid, name, home) = match (&entry, user.parse::<u32>()) {
        (Some(p), _) => (p.uid, p.gid, p.name.to_string(), p.home.to_string()),
        (None, Ok(uid)) => (uid, 0, String::new(), "/".to_string()),
        (None, Err(_)) => return Err(UserError::NoUser(user.to_string())),
    };
    if let Some(g) = grp {
        gid = match group_entries(group).find(|(n, id, _)| *n == g || g.parse::<u32>().ok() == Some(*id)) {
            Some((_, id, _)) => id,
            None => g.parse().map_err(|_| UserError::NoGroup(g.to_string()))?,
        };
    }
    let mut additional: Vec<u32> = Vec::new();
    if grp.is_none() && !name.is_empty() {
        for (_, id, members) in group_entries(group) {
            if members.contains(&name.as_str()) && id != gid && !additional.contains(&id) {
                additional.push(id);
            }
        }
    }
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
            (1000, 1000, vec![29, 44], "/home/user")
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
}
