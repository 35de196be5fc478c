"""The chain of rules: one file per rule, ``RULES`` in the order they run.

Every finding kind is a rule here, and only here: its name, what it is for (the wording
``relay policy show`` prints and a refused sender reads), the directions it binds and its
check. ``KINDS`` and the ``[actions]`` table of a policy file are derived from ``RULES``
(relay.policy.config refuses an action for a kind no rule has). Kinds found while the
message is read (tokens, HTML resources, attachment types) come first, in the order the
message was read; message kinds follow in chain order, so the first refusing one names
the rule in the reply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.policy.rules.attachment_removed import AttachmentRemoved
from relay.policy.rules.attachment_too_large import AttachmentTooLarge
from relay.policy.rules.base import BOTH, MessageRule, Record, Recorded, Rule
from relay.policy.rules.critical import Critical
from relay.policy.rules.dangerous_attachment import DangerousAttachment
from relay.policy.rules.deceptive_link import DeceptiveLink
from relay.policy.rules.email_address import EmailAddress
from relay.policy.rules.emoji import Emoji
from relay.policy.rules.external_link import ExternalLink
from relay.policy.rules.hidden_content import HiddenContent
from relay.policy.rules.image_metadata import ImageMetadata
from relay.policy.rules.important_tag_misuse import ImportantTagMisuse
from relay.policy.rules.messaging_app_link import MessagingAppLink
from relay.policy.rules.off_platform import OffPlatform
from relay.policy.rules.opt_out_link import OptOutLink
from relay.policy.rules.phone_number import PhoneNumber
from relay.policy.rules.promotional import Promotional
from relay.policy.rules.remote_image import RemoteImage
from relay.policy.rules.review_incentive import ReviewIncentive
from relay.policy.rules.review_solicitation import ReviewSolicitation
from relay.policy.rules.shipping_confirmation import ShippingConfirmation
from relay.policy.rules.social_handle import SocialHandle
from relay.policy.rules.thank_you_only import ThankYouOnly
from relay.policy.rules.tracking_pixel import TrackingPixel
from relay.policy.rules.wrong_language import WrongLanguage

if TYPE_CHECKING:
    from relay.policy.config import KindAction

RULES: tuple[type[Rule], ...] = (
    EmailAddress, PhoneNumber, ExternalLink, MessagingAppLink, SocialHandle, TrackingPixel,
    RemoteImage, HiddenContent, OptOutLink, Emoji, AttachmentRemoved, ImageMetadata,
    DeceptiveLink, DangerousAttachment, AttachmentTooLarge,
    # message kinds, judged on the writer's own words
    OffPlatform, Promotional, ReviewIncentive, ReviewSolicitation, ImportantTagMisuse,
    ShippingConfirmation, ThankYouOnly, WrongLanguage, Critical,
)
KINDS: dict[str, type[Rule]] = {r.kind: r for r in RULES}
DEFAULT_ACTIONS: dict[str, KindAction] = {r.kind: r.default_action for r in RULES}

__all__ = ["BOTH", "DEFAULT_ACTIONS", "KINDS", "RULES", "MessageRule", "Record", "Recorded",
           "Rule"]
