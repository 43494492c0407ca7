//! Who may do what, as pure functions.
//!
//! The rules: an admin manages its whole tenant; a reseller manages the clients it created and
//! their sites (and its own sites); a client manages its own sites; nobody crosses a tenant.
//! Stores apply the same rules in their queries (a row the caller may not manage is not found),
//! and the store conformance suite checks that the two agree.

use crate::model::{Role, TenantId, UserId};

/// The authenticated user a request acts for. Every store method that touches tenant-owned rows
/// takes one, so an unscoped query cannot be written by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The caller's tenant; the only tenant it can see.
    pub tenant: TenantId,
    /// The caller itself.
    pub user: UserId,
    /// The caller's role inside its tenant.
    pub role: Role,
}

/// Authority over the whole installation: tenants and nodes. Only the embedding application
/// creates one (for its operator accounts or for the panel's own background work); it is never
/// derived from a tenant user's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator {
    _private: (),
}

impl Operator {
    /// Claims operator authority. Call this only where the embedder has established that the
    /// actor is the hosting operator or the panel itself.
    pub fn assume() -> Self {
        Self { _private: () }
    }
}

/// The facts about a user that the rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserFacts {
    /// The user's tenant.
    pub tenant: TenantId,
    /// The user.
    pub id: UserId,
    /// Its role.
    pub role: Role,
    /// Who created it.
    pub created_by: Option<UserId>,
}

/// The facts about a website that the rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteFacts {
    /// The site's tenant.
    pub tenant: TenantId,
    /// The site's owner.
    pub owner: UserId,
    /// The owner's role: a reseller reaches only sites of *clients* it created, so promoting a
    /// client takes it out of its reseller's hands.
    pub owner_role: Role,
    /// Who created the owner (a reseller, for its clients).
    pub owner_created_by: Option<UserId>,
}

/// May `caller` create a user with `role` in its own tenant?
/// Admins create any role; resellers create clients; clients create nobody.
pub fn can_create_user(caller: &Caller, role: Role) -> bool {
    match caller.role {
        Role::Admin => true,
        Role::Reseller => role == Role::Client,
        Role::Client => false,
    }
}

/// May `caller` change or delete `target`?
pub fn can_manage_user(caller: &Caller, target: &UserFacts) -> bool {
    if caller.tenant != target.tenant {
        return false;
    }
    match caller.role {
        Role::Admin => true,
        Role::Reseller => target.role == Role::Client && target.created_by == Some(caller.user),
        Role::Client => false,
    }
}

/// May `caller` see `target`? Everyone it manages, and itself.
pub fn can_view_user(caller: &Caller, target: &UserFacts) -> bool {
    (caller.tenant == target.tenant && caller.user == target.id) || can_manage_user(caller, target)
}

/// May `caller` see and change `site`?
pub fn can_manage_site(caller: &Caller, site: &SiteFacts) -> bool {
    if caller.tenant != site.tenant {
        return false;
    }
    match caller.role {
        Role::Admin => true,
        Role::Reseller => {
            site.owner == caller.user
                || (site.owner_role == Role::Client && site.owner_created_by == Some(caller.user))
        }
        Role::Client => site.owner == caller.user,
    }
}

/// May `caller` create a site owned by `owner`? Exactly when it could manage such a site.
pub fn can_create_site_for(caller: &Caller, owner: &UserFacts) -> bool {
    can_manage_site(
        caller,
        &SiteFacts {
            tenant: owner.tenant,
            owner: owner.id,
            owner_role: owner.role,
            owner_created_by: owner.created_by,
        },
    )
}

/// May `caller` read its tenant's audit log and manage its alert rules and settings?
pub fn can_administer_tenant(caller: &Caller, tenant: TenantId) -> bool {
    caller.tenant == tenant && caller.role == Role::Admin
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: TenantId = TenantId(1);
    const T2: TenantId = TenantId(2);

    /// The cast of one tenant: an admin, two resellers, a client of each reseller, and a client
    /// created by the admin directly.
    struct Cast {
        admin: UserFacts,
        reseller_a: UserFacts,
        reseller_b: UserFacts,
        client_of_a: UserFacts,
        client_of_b: UserFacts,
        client_of_admin: UserFacts,
    }

    fn cast(tenant: TenantId, base: i64) -> Cast {
        let user = |n: i64, role, created_by: Option<i64>| UserFacts {
            tenant,
            id: UserId(base + n),
            role,
            created_by: created_by.map(|c| UserId(base + c)),
        };
        Cast {
            admin: user(1, Role::Admin, None),
            reseller_a: user(2, Role::Reseller, Some(1)),
            reseller_b: user(3, Role::Reseller, Some(1)),
            client_of_a: user(4, Role::Client, Some(2)),
            client_of_b: user(5, Role::Client, Some(3)),
            client_of_admin: user(6, Role::Client, Some(1)),
        }
    }

    fn caller(u: &UserFacts) -> Caller {
        Caller {
            tenant: u.tenant,
            user: u.id,
            role: u.role,
        }
    }

    fn site_of(owner: &UserFacts) -> SiteFacts {
        SiteFacts {
            tenant: owner.tenant,
            owner: owner.id,
            owner_role: owner.role,
            owner_created_by: owner.created_by,
        }
    }

    fn everyone(c: &Cast) -> [(&'static str, UserFacts); 6] {
        [
            ("admin", c.admin),
            ("reseller_a", c.reseller_a),
            ("reseller_b", c.reseller_b),
            ("client_of_a", c.client_of_a),
            ("client_of_b", c.client_of_b),
            ("client_of_admin", c.client_of_admin),
        ]
    }

    /// Every (actor, site owner) pair in one tenant, with the expected answer written out.
    #[test]
    fn site_management_table() {
        let c = cast(T1, 0);
        // rows: actor; columns: owner of the site, in `everyone` order.
        let expected: [(&str, [bool; 6]); 6] = [
            ("admin", [true, true, true, true, true, true]),
            ("reseller_a", [false, true, false, true, false, false]),
            ("reseller_b", [false, false, true, false, true, false]),
            ("client_of_a", [false, false, false, true, false, false]),
            ("client_of_b", [false, false, false, false, true, false]),
            ("client_of_admin", [false, false, false, false, false, true]),
        ];
        for ((actor_name, actor), (row_name, row)) in everyone(&c).iter().zip(expected) {
            assert_eq!(*actor_name, row_name);
            for ((owner_name, owner), want) in everyone(&c).iter().zip(row) {
                assert_eq!(
                    can_manage_site(&caller(actor), &site_of(owner)),
                    want,
                    "{actor_name} managing a site of {owner_name}"
                );
                assert_eq!(
                    can_create_site_for(&caller(actor), owner),
                    want,
                    "{actor_name} creating a site for {owner_name}"
                );
            }
        }
    }

    #[test]
    fn user_management_table() {
        let c = cast(T1, 0);
        let expected: [(&str, [bool; 6]); 6] = [
            ("admin", [true, true, true, true, true, true]),
            ("reseller_a", [false, false, false, true, false, false]),
            ("reseller_b", [false, false, false, false, true, false]),
            ("client_of_a", [false, false, false, false, false, false]),
            ("client_of_b", [false, false, false, false, false, false]),
            (
                "client_of_admin",
                [false, false, false, false, false, false],
            ),
        ];
        for ((actor_name, actor), (_, row)) in everyone(&c).iter().zip(expected) {
            for ((target_name, target), want) in everyone(&c).iter().zip(row) {
                assert_eq!(
                    can_manage_user(&caller(actor), target),
                    want,
                    "{actor_name} managing {target_name}"
                );
                let is_self = actor.id == target.id;
                assert_eq!(
                    can_view_user(&caller(actor), target),
                    want || is_self,
                    "{actor_name} viewing {target_name}"
                );
            }
        }
    }

    #[test]
    fn user_creation_table() {
        let expected = [
            (Role::Admin, [true, true, true]),
            (Role::Reseller, [false, false, true]),
            (Role::Client, [false, false, false]),
        ];
        for (actor_role, row) in expected {
            let actor = Caller {
                tenant: T1,
                user: UserId(1),
                role: actor_role,
            };
            for (new_role, want) in Role::ALL.into_iter().zip(row) {
                assert_eq!(
                    can_create_user(&actor, new_role),
                    want,
                    "{actor_role} creating {new_role}"
                );
            }
        }
    }

    /// Nobody, whatever their role, reaches anything in another tenant, even when the ids
    /// line up with their own.
    #[test]
    fn nobody_crosses_a_tenant() {
        let mine = cast(T1, 0);
        let theirs = cast(T2, 0);
        for (_, actor) in everyone(&mine) {
            let me = caller(&actor);
            for (_, target) in everyone(&theirs) {
                assert!(!can_manage_user(&me, &target));
                assert!(!can_view_user(&me, &target));
                assert!(!can_manage_site(&me, &site_of(&target)));
                assert!(!can_create_site_for(&me, &target));
            }
            assert!(!can_administer_tenant(&me, T2));
        }
    }

    /// A client promoted out of the client role leaves its reseller's reach, sites included.
    #[test]
    fn promotion_ends_a_resellers_control() {
        let c = cast(T1, 0);
        let mut promoted = c.client_of_a;
        promoted.role = Role::Reseller;
        let reseller = caller(&c.reseller_a);
        assert!(!can_manage_user(&reseller, &promoted));
        assert!(!can_manage_site(&reseller, &site_of(&promoted)));
        assert!(!can_create_site_for(&reseller, &promoted));
        assert!(can_manage_site(&caller(&c.admin), &site_of(&promoted)));
    }

    #[test]
    fn only_admins_administer_their_tenant() {
        let c = cast(T1, 0);
        for (name, u) in everyone(&c) {
            assert_eq!(
                can_administer_tenant(&caller(&u), T1),
                u.role == Role::Admin,
                "{name}"
            );
        }
    }
}
