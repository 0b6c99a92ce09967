//! What an allocation's owner does with it (RFC 8656 §7.3, §9, §11):
//! Refresh, CreatePermission and ChannelBind, and the peer check every
//! relayed datagram and permission goes through.

use std::net::SocketAddr;
use std::time::Instant;

use super::allocation::{AllocationId, ChannelBinding, PermissionChange};
use super::requests::{Answer, Refusal};
use super::server::Server;
use super::session_log::EndReason;
use super::timers::TimerKey;
use crate::stun::{
    AddressFamily, AttributeType, ChannelNumber, ChannelNumberAttr, ErrorCode, Lifetime, Message,
    RequestedAddressFamily, XorPeerAddress,
};

impl Server {
    /// RFC 8656 §7.4: Refresh, with LIFETIME 0 deleting the allocation.
    pub(super) fn refresh(
        &mut self,
        now: Instant,
        id: AllocationId,
        msg: &Message<'_>,
    ) -> Result<Answer, Refusal> {
        // RFC 8656 §7.3: a REQUESTED-ADDRESS-FAMILY the allocation lacks is 443.
        if let Some(Ok(RequestedAddressFamily(f))) = msg.get::<RequestedAddressFamily>() {
            let has_family = self
                .allocation(id)
                .is_some_and(|a| a.relays().any(|r| AddressFamily::of(&r) == f));
            if !has_family {
                return Err((
                    ErrorCode::PEER_ADDRESS_FAMILY_MISMATCH,
                    "Address family mismatch",
                ));
            }
        }
        let requested = msg
            .get::<Lifetime>()
            .and_then(Result::ok)
            .map(|Lifetime(secs)| std::time::Duration::from_secs(u64::from(secs)));
        let granted = if requested.is_some_and(|d| d.is_zero()) {
            self.remove_allocation(now, id, EndReason::Deleted);
            0
        } else {
            let lifetime = self.granted_lifetime(requested);
            let expires = now + lifetime;
            let mut rearm = false;
            if let Some(alloc) = self.allocation_mut(id) {
                alloc.expires = expires;
                alloc.lifetime = lifetime;
                // A shorter lifetime needs an earlier timer than the one armed.
                if expires < alloc.timer_at {
                    alloc.timer_at = expires;
                    rearm = true;
                }
            }
            if rearm {
                self.schedule(expires, TimerKey::Allocation(id));
            }
            if let Some(a) = self.allocation(id) {
                super::session_log::refreshed(a, &self.credentials.realm);
            }
            u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX)
        };
        Ok(Answer::Lifetime(granted))
    }

    /// Checks a peer address against the allocation's family and the policy.
    pub(crate) fn check_peer(&self, id: AllocationId, peer: SocketAddr) -> Result<(), Refusal> {
        let alloc = self
            .allocation(id)
            .ok_or((ErrorCode::ALLOCATION_MISMATCH, "No allocation"))?;
        // RFC 8656 §9.1 / §11: the peer's family must be one the allocation relays.
        if alloc.relay_for(&peer).is_none() {
            return Err((
                ErrorCode::PEER_ADDRESS_FAMILY_MISMATCH,
                "Peer Address Family Mismatch",
            ));
        }
        if !self.config.peer_policy.permits(peer) {
            return Err((ErrorCode::FORBIDDEN, "Forbidden peer address"));
        }
        Ok(())
    }

    /// RFC 8656 §9.2: CreatePermission for every XOR-PEER-ADDRESS, all or nothing.
    pub(super) fn create_permission(
        &mut self,
        now: Instant,
        id: AllocationId,
        msg: &Message<'_>,
    ) -> Result<Answer, Refusal> {
        let tid = msg.transaction_id();
        let mut peers = Vec::new();
        for attr in msg
            .attributes()
            .filter(|a| a.attr_type == AttributeType::XOR_PEER_ADDRESS)
        {
            match <XorPeerAddress as crate::stun::DecodeAttribute>::decode(attr.value, &tid) {
                Ok(XorPeerAddress(peer)) => peers.push(peer),
                Err(_) => return Err((ErrorCode::BAD_REQUEST, "Malformed XOR-PEER-ADDRESS")),
            }
        }
        if peers.is_empty() {
            return Err((ErrorCode::BAD_REQUEST, "XOR-PEER-ADDRESS required"));
        }
        for peer in &peers {
            self.check_peer(id, *peer)?;
        }
        let expires = now + self.config.permission_lifetime;
        let max = self.config.max_permissions_per_allocation;
        // All or nothing (§9.2): check the room before installing any.
        let mut new_ips: Vec<std::net::IpAddr> = Vec::new();
        let existing = self
            .allocation(id)
            .map(|a| a.permissions.clone())
            .unwrap_or_default();
        for peer in &peers {
            if !existing.iter().any(|p| p.ip == peer.ip()) && !new_ips.contains(&peer.ip()) {
                new_ips.push(peer.ip());
            }
        }
        if existing.len() + new_ips.len() > max {
            return Err((
                ErrorCode::INSUFFICIENT_CAPACITY,
                "Too many permissions on this allocation",
            ));
        }
        let mut installed = Vec::new();
        if let Some(alloc) = self.allocation_mut(id) {
            for peer in &peers {
                if alloc.refresh_permission(peer.ip(), expires, max) == PermissionChange::Installed
                {
                    installed.push(peer.ip());
                }
            }
        }
        for ip in installed {
            self.stats.permissions_installed += 1;
            self.schedule(expires, TimerKey::Permission(id, ip));
        }
        Ok(Answer::Success)
    }

    /// RFC 8656 §11.2: ChannelBind, with the rebinding rules of §11.
    pub(super) fn channel_bind(
        &mut self,
        now: Instant,
        id: AllocationId,
        msg: &Message<'_>,
    ) -> Result<Answer, Refusal> {
        let number = match msg.get::<ChannelNumberAttr>() {
            Some(Ok(ChannelNumberAttr(n)))
                if ChannelNumber(n).is_valid(self.config.channel_range) =>
            {
                n
            }
            Some(Ok(_)) => return Err((ErrorCode::BAD_REQUEST, "Channel number out of range")),
            _ => {
                return Err((
                    ErrorCode::BAD_REQUEST,
                    "CHANNEL-NUMBER missing or malformed",
                ))
            }
        };
        let Some(Ok(XorPeerAddress(peer))) = msg.get::<XorPeerAddress>() else {
            return Err((
                ErrorCode::BAD_REQUEST,
                "XOR-PEER-ADDRESS missing or malformed",
            ));
        };
        self.check_peer(id, peer)?;
        // Shared relay socket mode: the peer endpoint must be free or ours,
        // and the allocation under its cap (508, see `turn::shared`).
        let claim = self.claim_status(id, peer);
        match claim {
            Some(super::shared::ClaimStatus::Taken) => {
                return Err((
                    ErrorCode::INSUFFICIENT_CAPACITY,
                    "Insufficient Capacity (peer endpoint in use by another allocation on this shared relay address)",
                ))
            }
            Some(super::shared::ClaimStatus::Full) => {
                return Err((
                    ErrorCode::INSUFFICIENT_CAPACITY,
                    "Insufficient Capacity (too many peer endpoints on this allocation)",
                ))
            }
            _ => {}
        }
        let channel_expires = now + self.config.channel_lifetime;
        let permission_expires = now + self.config.permission_lifetime;
        let max_channels = self.config.max_channels_per_allocation;
        let max_permissions = self.config.max_permissions_per_allocation;
        let Some(alloc) = self.allocation_mut(id) else {
            return Err((
                ErrorCode::ALLOCATION_MISMATCH,
                "No allocation for this 5-tuple",
            ));
        };
        // §11: a number is bound to one peer and a peer to one number, and
        // both stay reserved for 5 minutes after the binding expires.
        let same_number = alloc
            .channels
            .iter()
            .position(|c| c.number == number && c.blocks_rebinding(now));
        let same_peer = alloc
            .channels
            .iter()
            .position(|c| c.peer == peer && c.blocks_rebinding(now));
        // §11.2 needs a permission for the peer: refuse before binding if there is no room.
        let has_permission_entry = alloc.permissions.iter().any(|p| p.ip == peer.ip());
        if !has_permission_entry && alloc.permissions.len() >= max_permissions {
            return Err((
                ErrorCode::INSUFFICIENT_CAPACITY,
                "Too many permissions on this allocation",
            ));
        }
        let mut new_channel = false;
        match (same_number, same_peer) {
            (Some(a), Some(b)) if a == b => {
                if let Some(c) = alloc.channels.get_mut(a) {
                    c.expires = channel_expires;
                }
            }
            (None, None) => {
                // Forget bindings whose cooldown has passed before counting.
                alloc.channels.retain(|c| c.blocks_rebinding(now));
                if alloc.channels.len() >= max_channels {
                    return Err((
                        ErrorCode::INSUFFICIENT_CAPACITY,
                        "Too many channels on this allocation",
                    ));
                }
                alloc.channels.push(ChannelBinding {
                    number,
                    peer,
                    expires: channel_expires,
                    offloaded: None,
                    kernel_seen: [0; 4],
                });
                new_channel = true;
            }
            (Some(_), _) => {
                return Err((
                    ErrorCode::BAD_REQUEST,
                    "Channel already bound to another peer",
                ))
            }
            (None, Some(_)) => {
                return Err((
                    ErrorCode::BAD_REQUEST,
                    "Peer already bound to another channel",
                ))
            }
        }
        // §11.2: binding a channel installs or refreshes the peer's permission.
        let change = alloc.refresh_permission(peer.ip(), permission_expires, max_permissions);
        if claim == Some(super::shared::ClaimStatus::Free) {
            self.insert_claim(id, peer);
        }
        if new_channel {
            self.stats.channels_bound += 1;
            self.schedule(channel_expires, TimerKey::Channel(id, number));
        }
        if change == PermissionChange::Installed {
            self.stats.permissions_installed += 1;
            self.schedule(permission_expires, TimerKey::Permission(id, peer.ip()));
        }
        Ok(Answer::Success)
    }
}
