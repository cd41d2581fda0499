"""Reads: who may see which emails, templates and attachments.

The visibility rule (docs/api.md): staff (``is_staff``) see every email. Anyone else
sees the emails they created or sent as themselves, the emails of the queues they are
a member of (sent as the queue, or with the queue among the parties), and the emails
on which they are a party themselves. Contacts and accounts have no owners, so
"regarding a record they can see" would be every record; it is not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, cast

from django.contrib.auth.models import AnonymousUser
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, Lower, Trim

from common.errors import ApplicationError
from crm.models import Contact, EmailApproval, Organization, Queue, User

from .addresses import check_address
from .models import (
    ActivityMimeAttachment,
    BulkSend,
    Email,
    EmailEvent,
    EmailParty,
    EmailStatus,
    InboundMessage,
    InboundStatus,
    SuppressedAddress,
    Template,
)
from .policies import SEND_AS_ANY_PERMISSION, check_sender_approved, sender_approval_required

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


def emails_visible_to(user: User | AnonymousUser) -> QuerySet[Email]:
    emails = Email.objects.all()
    if not user.is_authenticated:
        return emails.none()
    if user.is_staff:
        return emails
    queue_ids = user.queues.values("pk")
    party_of = EmailParty.objects.filter(Q(user=user) | Q(queue__in=queue_ids)).values("email_id")
    return emails.filter(
        Q(sender_user=user)
        | Q(created_by=user)
        | Q(sender_queue__in=queue_ids)
        | Q(pk__in=party_of)
    )


MAX_SEARCH_TERMS = 10


def emails_matching(emails: QuerySet[Email], terms: list[str]) -> QuerySet[Email]:
    """Emails with every term in the subject or in a party's address or name.

    Parties are matched by ``EXISTS`` rather than a join, so an email with several
    matching parties is listed once and no ``DISTINCT`` is needed.
    """
    for term in terms[:MAX_SEARCH_TERMS]:
        parties = EmailParty.objects.filter(email=OuterRef("pk")).filter(
            Q(address__icontains=term) | Q(name__icontains=term)
        )
        emails = emails.filter(Q(subject__icontains=term) | Exists(parties))
    return emails


def delivery_by(kind: str) -> Q:
    """Emails whose sender (the queue, else the user) delivers through ``kind``."""
    return Q(sender_queue__outgoing_delivery=kind) | Q(
        sender_queue__isnull=True, sender_user__outgoing_delivery=kind
    )


def email_list_queryset(qs: QuerySet[Email]) -> QuerySet[Email]:
    """Everything an email's representation needs, in a fixed number of queries."""
    return qs.select_related(
        "sender_user", "sender_queue", "regarding_type", "template"
    ).prefetch_related(
        Prefetch("parties", queryset=EmailParty.objects.order_by("role", "position", "id")),
        Prefetch(
            "attachments",
            queryset=ActivityMimeAttachment.objects.select_related("blob").order_by(
                "position", "id"
            ),
        ),
    )


def email_page_queryset(qs: QuerySet[Email]) -> QuerySet[Email]:
    """``email_list_queryset`` plus the status timeline (oldest first, with its actors)."""
    return email_list_queryset(qs).prefetch_related(
        Prefetch(
            "events",
            queryset=EmailEvent.objects.select_related("actor").order_by("created_at", "id"),
        )
    )


def templates_visible_to(user: User | AnonymousUser) -> QuerySet[Template]:
    return Template.objects.all() if user.is_authenticated else Template.objects.none()


def attachments_visible_to(user: User | AnonymousUser) -> QuerySet[ActivityMimeAttachment]:
    """Attachments of templates, and of the emails the user may see."""
    if not user.is_authenticated:
        return ActivityMimeAttachment.objects.none()
    attachments = ActivityMimeAttachment.objects.select_related("blob")
    if user.is_staff:
        return attachments
    return attachments.filter(
        Q(template__isnull=False) | Q(email__in=emails_visible_to(user).values("pk"))
    )


# --- bulk sends ----------------------------------------------------------------------

BULK_QUERY_KEYS = ("account", "city", "tag", "created_after", "created_before")


def contacts_matching(query: dict[str, Any]) -> QuerySet[Contact]:
    """The contacts a bulk job's (already validated) query selects, in id order."""
    contacts = Contact.objects.all()
    if query.get("account") is not None:
        contacts = contacts.filter(account_id=query["account"])
    if query.get("city"):
        contacts = contacts.filter(city__iexact=query["city"])
    if query.get("tag"):
        contacts = contacts.filter(tags__name__iexact=query["tag"])
    if query.get("created_after"):
        contacts = contacts.filter(created_at__gte=query["created_after"])
    if query.get("created_before"):
        contacts = contacts.filter(created_at__lt=query["created_before"])
    return contacts.order_by("pk")


def bulk_sends_visible_to(user: User | AnonymousUser) -> QuerySet[BulkSend]:
    """Staff see every job; others the jobs they started or that send as them or
    as a queue they are a member of."""
    jobs = BulkSend.objects.select_related("template", "sender_user", "sender_queue")
    if not user.is_authenticated:
        return jobs.none()
    if user.is_staff:
        return jobs
    return jobs.filter(
        Q(created_by=user) | Q(sender_user=user) | Q(sender_queue__in=user.queues.values("pk"))
    )


def _bulk_emails_in(status: str) -> Coalesce:
    counted = (
        Email.objects.filter(bulk_send=OuterRef("pk"), status=status)
        .order_by()
        .values("bulk_send")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted), 0)


class ProgressCounts(TypedDict):
    """What ``bulk_sends_with_progress`` adds to each job."""

    sent_count: int
    failed_count: int
    canceled_count: int


def bulk_sends_with_progress(
    jobs: QuerySet[BulkSend],
) -> QuerySet[WithAnnotations[BulkSend, ProgressCounts]]:
    """Jobs with ``sent_count``, ``failed_count`` and ``canceled_count``, counted from
    their emails (subqueries: a page of jobs costs one query, and the columns sort)."""
    return jobs.annotate(
        sent_count=_bulk_emails_in(EmailStatus.SENT),
        failed_count=_bulk_emails_in(EmailStatus.FAILED),
        canceled_count=_bulk_emails_in(EmailStatus.CANCELED),
    )


def bulk_send_progress(job: BulkSend) -> dict[str, Any]:
    """Counters of a job; ``sent``, ``failed`` and ``canceled`` are counted from its emails.

    A job from ``bulk_sends_with_progress`` costs no query; another costs one.
    """
    if hasattr(job, "sent_count"):  # from bulk_sends_with_progress: counted already
        counted = cast("WithAnnotations[BulkSend, ProgressCounts]", job)
    else:
        counted = bulk_sends_with_progress(BulkSend.objects.filter(pk=job.pk)).get()
    return {
        "total": counted.total,
        "created": counted.created,
        "sent": counted.sent_count,
        "failed": counted.failed_count,
        "canceled": counted.canceled_count,
        "skipped": counted.skipped,
        "skipped_by_reason": counted.skipped_by_reason,
    }


@dataclass(frozen=True)
class BulkAudience:
    """Who a bulk query would write to, before a job starts (the wizard's preview).

    ``skipped`` counts by ``SkipReason`` value, with the job's rules and in its order:
    no address, then do-not-(bulk-)email, then suppressed, then a second contact with
    an address already taken. An address the job finds malformed is counted as
    eligible here (the job skips it as ``no_address``). ``sample`` holds the first
    eligible contacts in the job's order (id), with their accounts.
    """

    total: int
    eligible: int
    skipped: dict[str, int]
    sample: list[Contact]


def bulk_audience(query: dict[str, Any], *, sample_size: int = 3) -> BulkAudience:
    """Count a validated bulk query's recipients and skips in a few aggregate queries."""
    contacts = contacts_matching(query).annotate(address=Lower(Trim("email")))
    total = contacts.count()
    with_address = contacts.exclude(address="")
    no_address = total - with_address.count()
    allowed = with_address.filter(do_not_bulk_email=False, do_not_email=False)
    flagged = total - no_address - allowed.count()
    eligible = allowed.exclude(
        Exists(SuppressedAddress.objects.filter(address=OuterRef("address")))
    )
    unsuppressed = eligible.count()
    distinct = eligible.order_by().values("address").distinct().count()
    skipped = {
        "no_address": no_address,
        "do_not_bulk_email": flagged,
        "suppressed": allowed.count() - unsuppressed,
        "duplicate_address": unsuppressed - distinct,
    }
    # The job keeps the first contact (by id) of each address; so does the sample.
    sample: list[Contact] = []
    seen: set[str] = set()
    for contact in eligible.select_related("account")[: sample_size * 4]:
        if contact.address not in seen:
            seen.add(contact.address)
            sample.append(contact)
        if len(sample) == sample_size:
            break
    return BulkAudience(
        total=total,
        eligible=distinct,
        skipped={reason: n for reason, n in skipped.items() if n},
        sample=sample,
    )


# --- senders ------------------------------------------------------------------------

APPROVAL_WORDS: dict[str, str] = {
    EmailApproval.APPROVED: "approved",
    EmailApproval.PENDING: "pending approval",
    EmailApproval.REJECTED: "rejected",
    EmailApproval.EMPTY: "not approved",
}


@dataclass(frozen=True)
class SenderChoice:
    """One sender a user may choose: themselves or a queue."""

    key: str  # "user:3" or "queue:1", a form's value
    record: User | Queue
    kind: str  # "user" or "queue"
    approval: str  # "approved", "pending approval", "rejected", "not approved", "not required"
    approved: bool  # False when check_sender_approved refuses it
    problem: str  # the refusal a send from it would meet, in the services' words; or ""

    @property
    def label(self) -> str:
        return f"{self.record.display_name} <{self.record.email}> · {self.approval}"


def sender_key(sender: User | Queue | None) -> str:
    """``"user:3"`` or ``"queue:1"``; ``""`` for no sender."""
    if sender is None:
        return ""
    return f"{'queue' if isinstance(sender, Queue) else 'user'}:{sender.pk}"


def sender_named(key: str) -> User | Queue | None:
    """The user or queue a key names, whoever may send as it (the services say who may:
    ``check_may_send_as``); ``None`` for a key that names nothing."""
    kind, _, pk = (key or "").partition(":")
    senders: dict[str, type[User] | type[Queue]] = {"user": User, "queue": Queue}
    model = senders.get(kind)
    if model is None or not pk.isdigit():
        return None
    return model.objects.filter(pk=int(pk)).first()


def _choice(sender: User | Queue, org: Organization) -> SenderChoice:
    approved, problem = True, ""
    try:
        check_address(sender.email or "", label=f"the sender's address ({sender.display_name})")
    except ApplicationError as err:
        problem = err.message
    try:
        check_sender_approved(sender, org)
    except ApplicationError as err:
        approved, problem = False, problem or err.message
    if sender_approval_required(sender, org):
        approval = APPROVAL_WORDS.get(sender.email_router_access_approval, "not approved")
    else:
        approval = "not required"
    kind = "queue" if isinstance(sender, Queue) else "user"
    return SenderChoice(sender_key(sender), sender, kind, approval, approved, problem)


def sender_choices(user: User, *, current: User | Queue | None = None) -> list[SenderChoice]:
    """The user, then the queues they may send as (the ones they are a member of; every
    queue for holders of ``send_as_any_sender``), by name; plus ``current`` (a draft's
    sender) when it is not among them. Each with its approval and the refusal a send
    from it would meet (``check_address``, ``check_sender_approved``), if any."""
    org = Organization.get()
    queues = Queue.objects.all() if user.has_perm(SEND_AS_ANY_PERMISSION) else user.queues.all()
    senders: list[User | Queue] = [user, *queues.order_by("name", "id")]
    if current is not None and sender_key(current) not in {sender_key(s) for s in senders}:
        senders.append(current)
    return [_choice(sender, org) for sender in senders]


def sender_from_key(
    user: User, key: str, *, current: User | Queue | None = None
) -> User | Queue | None:
    """The sender ``key`` names among ``sender_choices(user, current=current)``; ``None``
    for any other key."""
    return next((c.record for c in sender_choices(user, current=current) if c.key == key), None)


# --- received mail: inline parts, conversations, held messages -------------------------

# Inline parts shown in the email page's frame: images a browser draws and cannot run
# (no SVG, which can hold scripts and fetch).
INLINE_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp")


def inline_images_of(email: Email) -> QuerySet[ActivityMimeAttachment]:
    """The attachments of ``email`` that its HTML may show inline (``cid:``): a
    Content-ID and an image type of ``INLINE_IMAGE_TYPES``."""
    return email.attachments.exclude(content_id="").filter(mime_type__in=INLINE_IMAGE_TYPES)


# How far a conversation is followed: parents up, replies down.
CONVERSATION_MAX_DEPTH = 50
CONVERSATION_MAX_EMAILS = 200


def conversation_of(email: Email, user: User | AnonymousUser) -> list[Email]:
    """The whole conversation ``email`` is part of, as ``user`` may see it: its original
    (followed up through ``parent``), then every reply and forward of each (down through
    ``replies``), oldest first by when each was sent or received. Bounded: at most
    ``CONVERSATION_MAX_DEPTH`` parents and ``CONVERSATION_MAX_EMAILS`` emails, one
    query per level."""
    root_id = email.pk
    seen = {email.pk}
    parent_id = email.parent_id
    for _ in range(CONVERSATION_MAX_DEPTH):
        if parent_id is None or parent_id in seen:
            break
        seen.add(parent_id)
        root_id = parent_id
        parent_id = Email.objects.filter(pk=parent_id).values_list("parent_id", flat=True).first()
    ids = {root_id}
    level = [root_id]
    while level and len(ids) < CONVERSATION_MAX_EMAILS:
        level = [
            pk
            for pk in Email.objects.filter(parent_id__in=level).values_list("pk", flat=True)[
                :CONVERSATION_MAX_EMAILS
            ]
            if pk not in ids
        ]
        ids.update(level)
    return list(
        emails_visible_to(user)
        .filter(pk__in=ids)
        .annotate(at=Coalesce("received_at", "sent_at", "created_at"))
        .select_related("sender_user", "sender_queue")
        .order_by("at", "pk")[:CONVERSATION_MAX_EMAILS]
    )


HELD_LISTS: dict[str, tuple[str, ...]] = {
    "blocked": (InboundStatus.BLOCKED,),
    "unreadable": (InboundStatus.UNPARSABLE, InboundStatus.REFUSED, InboundStatus.KEPT),
}


def inbound_messages_held(kind: str) -> QuerySet[InboundMessage]:
    """Kept inbound messages that did not become an email, newest first: ``blocked``
    (waiting for an address's approval) or ``unreadable`` (unparsable, refused with a
    reason, or not read yet)."""
    return (
        InboundMessage.objects.filter(status__in=HELD_LISTS[kind])
        .select_related("blob", "owner_user", "owner_queue", "released_by")
        .order_by("-received_at", "-pk")
    )
