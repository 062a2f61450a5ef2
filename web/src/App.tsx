import { useCallback, useEffect, useMemo, useState } from "react";
import {
  DashboardApiError,
  DashboardClient,
  formatMoney,
  type ErasureReport,
  type Order,
  type OrderStatus,
  type OrderSummary,
  type OrdersPage,
  type Profile,
  type ProfileUpdate,
} from "@babes-club/dashboard-client";

const TOKEN_KEY = "dashboard.token";

type View = { name: "profile" } | { name: "orders" } | { name: "order"; orderId: string };

export function App() {
  const [token, setToken] = useState<string | null>(() => localStorage.getItem(TOKEN_KEY));
  const [view, setView] = useState<View>({ name: "orders" });
  const client = useMemo(
    () => new DashboardClient({ baseUrl: window.location.origin, token: () => token }),
    [token],
  );
  // Said on the sign-in view after the member erased their data.
  const [notice, setNotice] = useState<string | null>(null);
  const signOut = useCallback(() => {
    localStorage.removeItem(TOKEN_KEY);
    setToken(null);
  }, []);
  const onErased = useCallback(
    (report: ErasureReport) => {
      const orders = report.ordersRemoved === 1 ? "1 cached order" : `${report.ordersRemoved} cached orders`;
      setNotice(`Your dashboard data was erased: your profile and ${orders}. ${report.retained}`);
      setView({ name: "orders" });
      signOut();
    },
    [signOut],
  );

  if (!token) {
    return (
      <SignIn
        notice={notice}
        onToken={(t) => {
          localStorage.setItem(TOKEN_KEY, t);
          setNotice(null);
          setToken(t);
        }}
      />
    );
  }
  return (
    <div className="app">
      <header>
        <h1>Babes Club</h1>
        <nav aria-label="Sections">
          <button aria-current={view.name !== "profile"} onClick={() => setView({ name: "orders" })}>
            Orders
          </button>
          <button aria-current={view.name === "profile"} onClick={() => setView({ name: "profile" })}>
            Profile
          </button>
          <button onClick={signOut}>Sign out</button>
        </nav>
      </header>
      <main>
        {view.name === "profile" && <ProfileView client={client} onUnauthorized={signOut} onErased={onErased} />}
        {view.name === "orders" && (
          <OrdersView client={client} onOpen={(orderId) => setView({ name: "order", orderId })} onUnauthorized={signOut} />
        )}
        {view.name === "order" && (
          <OrderView client={client} orderId={view.orderId} onBack={() => setView({ name: "orders" })} />
        )}
      </main>
    </div>
  );
}

function SignIn({ notice, onToken }: { notice: string | null; onToken: (token: string) => void }) {
  const [pasted, setPasted] = useState("");
  const [devAvailable, setDevAvailable] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    fetch("/dev/token").then((r) => setDevAvailable(r.ok), () => setDevAvailable(false));
  }, []);
  const useDevToken = async () => {
    const response = await fetch("/dev/token");
    if (!response.ok) {
      setError("The development token is not available on this server.");
      return;
    }
    const body = (await response.json()) as { token: string };
    onToken(body.token);
  };
  return (
    <main className="signin">
      <h1>Babes Club member dashboard</h1>
      {notice && (
        <p role="status" className="notice ok">
          {notice}
        </p>
      )}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (pasted.trim()) onToken(pasted.trim());
        }}
      >
        <label htmlFor="token">Access token</label>
        <textarea id="token" rows={4} value={pasted} onChange={(e) => setPasted(e.target.value)} placeholder="Paste your access token" />
        <button type="submit" disabled={!pasted.trim()}>
          Sign in
        </button>
      </form>
      {devAvailable && (
        <button className="secondary" onClick={useDevToken}>
          Use the local development token
        </button>
      )}
      {error && <p role="alert">{error}</p>}
    </main>
  );
}

function describe(error: unknown): string {
  if (error instanceof DashboardApiError) {
    if (error.status === 0) return "The server cannot be reached. Check your connection and retry.";
    if (error.status === 503) return "The service is busy. Please retry in a moment.";
    return error.message;
  }
  return "Something went wrong. Please retry.";
}

type FieldErrors = Record<string, string>;
type Address = NonNullable<ProfileUpdate["shippingAddress"]>;

function ProfileView({
  client,
  onUnauthorized,
  onErased,
}: {
  client: DashboardClient;
  onUnauthorized: () => void;
  onErased: (report: ErasureReport) => void;
}) {
  const [profile, setProfile] = useState<Profile | null>(null);
  const [etag, setEtag] = useState("");
  const [draft, setDraft] = useState<ProfileUpdate | null>(null);
  const [fieldErrors, setFieldErrors] = useState<FieldErrors>({});
  const [message, setMessage] = useState<{ kind: "ok" | "error" | "conflict"; text: string } | null>(null);
  const [loading, setLoading] = useState(true);

  const load = useCallback(async () => {
    setLoading(true);
    try {
      const { profile, etag } = await client.getProfile();
      setProfile(profile);
      setEtag(etag);
      setDraft(toUpdate(profile));
      setFieldErrors({});
    } catch (e) {
      if (e instanceof DashboardApiError && e.status === 401) return onUnauthorized();
      setMessage({ kind: "error", text: describe(e) });
    } finally {
      setLoading(false);
    }
  }, [client, onUnauthorized]);
  useEffect(() => void load(), [load]);

  const save = async (event: React.FormEvent) => {
    event.preventDefault();
    setMessage(null);
    setFieldErrors({});
    if (!draft) return;
    try {
      const saved = await client.updateProfile(clean(draft), etag);
      setProfile(saved.profile);
      setEtag(saved.etag);
      setDraft(toUpdate(saved.profile));
      setMessage({ kind: "ok", text: "Profile saved." });
    } catch (e) {
      if (e instanceof DashboardApiError && e.status === 412) {
        setMessage({ kind: "conflict", text: "Your profile was changed somewhere else since you opened it." });
      } else if (e instanceof DashboardApiError && e.field) {
        // The message starts with the field's path; beside the field, the rest says it all.
        const text = e.message.startsWith(e.field) ? e.message.slice(e.field.length).trim() : e.message;
        setFieldErrors({ [e.field]: text.charAt(0).toUpperCase() + text.slice(1) });
      } else {
        setMessage({ kind: "error", text: describe(e) });
      }
    }
  };

  if (loading && !profile) return <p aria-busy="true">Loading your profile…</p>;
  if (!profile || !draft) return <p role="alert">{message?.text ?? "Your profile could not be loaded."}</p>;
  const address: Address = draft.shippingAddress ?? { line1: "", line2: null, city: "", region: null, postalCode: "", country: "" };
  const setAddress = (patch: Partial<typeof address>) =>
    setDraft({ ...draft, shippingAddress: { ...address, ...patch } });
  const text = (field: string, label: string, value: string | null | undefined, onChange: (v: string) => void, type = "text") => (
    <Field name={field} label={label} error={fieldErrors[field]}>
      <input id={field} type={type} value={value ?? ""} onChange={(e) => onChange(e.target.value)} aria-invalid={!!fieldErrors[field]} aria-describedby={fieldErrors[field] ? `${field}-error` : undefined} />
    </Field>
  );

  return (
    <section aria-labelledby="profile-heading">
      <h2 id="profile-heading">Your profile</h2>
      <p className="muted">Member id {profile.userId} · {profile.totalOrders} orders</p>
      {message && (
        <div role={message.kind === "ok" ? "status" : "alert"} className={`notice ${message.kind}`}>
          {message.text}
          {message.kind === "conflict" && (
            <button onClick={() => { setMessage(null); void load(); }}>Reload the latest version</button>
          )}
        </div>
      )}
      <form onSubmit={save} noValidate>
        {text("email", "Email", draft.email, (v) => setDraft({ ...draft, email: v }), "email")}
        {text("displayName", "Display name", draft.displayName, (v) => setDraft({ ...draft, displayName: v }))}
        {text("avatarUrl", "Avatar URL (https)", draft.avatarUrl, (v) => setDraft({ ...draft, avatarUrl: v }), "url")}
        {text("preferredWallet", "Preferred wallet (0x…)", draft.preferredWallet, (v) => setDraft({ ...draft, preferredWallet: v }))}
        <fieldset>
          <legend>Shipping address</legend>
          {text("shippingAddress.line1", "Address line 1", address.line1, (v) => setAddress({ line1: v }))}
          {text("shippingAddress.line2", "Address line 2", address.line2, (v) => setAddress({ line2: v }))}
          {text("shippingAddress.city", "City", address.city, (v) => setAddress({ city: v }))}
          {text("shippingAddress.region", "Region", address.region, (v) => setAddress({ region: v }))}
          {text("shippingAddress.postalCode", "Postal code", address.postalCode, (v) => setAddress({ postalCode: v }))}
          {text("shippingAddress.country", "Country (2 letters)", address.country, (v) => setAddress({ country: v }))}
        </fieldset>
        <button type="submit">Save profile</button>
      </form>
      <YourData client={client} etag={etag} onUnauthorized={onUnauthorized} onErased={onErased} onStale={load} />
    </section>
  );
}

/** The member's data rights: download everything the dashboard keeps, or erase it. */
function YourData({
  client,
  etag,
  onUnauthorized,
  onErased,
  onStale,
}: {
  client: DashboardClient;
  etag: string;
  onUnauthorized: () => void;
  onErased: (report: ErasureReport) => void;
  onStale: () => Promise<void>;
}) {
  const [busy, setBusy] = useState<"export" | "erase" | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [message, setMessage] = useState<{ kind: "ok" | "error"; text: string } | null>(null);

  const exportData = async () => {
    setBusy("export");
    setMessage(null);
    try {
      const data = await client.exportAll();
      download(`babes-club-export-${data.exportedAt.slice(0, 10)}.json`, data);
      setMessage({ kind: "ok", text: `Your data was downloaded (${data.orders.length} orders).` });
    } catch (e) {
      if (e instanceof DashboardApiError && e.status === 401) return onUnauthorized();
      setMessage({ kind: "error", text: describe(e) });
    } finally {
      setBusy(null);
    }
  };

  const erase = async () => {
    setBusy("erase");
    setMessage(null);
    try {
      // The member confirmed this version of the profile: a change made meanwhile is 412.
      onErased(await client.eraseProfile(etag));
    } catch (e) {
      setBusy(null);
      setConfirming(false);
      if (e instanceof DashboardApiError && e.status === 401) return onUnauthorized();
      if (e instanceof DashboardApiError && e.status === 412) {
        setMessage({ kind: "error", text: "Your profile was changed somewhere else. Check it, then erase again." });
        return void onStale();
      }
      setMessage({ kind: "error", text: describe(e) });
    }
  };

  return (
    <section aria-labelledby="data-heading" className="your-data">
      <h3 id="data-heading">Your data</h3>
      {message && (
        <p role={message.kind === "ok" ? "status" : "alert"} className={`notice ${message.kind}`}>
          {message.text}
        </p>
      )}
      <div className="actions">
        <button className="secondary" onClick={() => void exportData()} disabled={busy !== null} aria-busy={busy === "export"}>
          {busy === "export" ? "Preparing your export…" : "Export my data"}
        </button>
        {!confirming && (
          <button className="danger" onClick={() => setConfirming(true)} disabled={busy !== null}>
            Erase my dashboard data
          </button>
        )}
      </div>
      {confirming && (
        <div role="alertdialog" aria-labelledby="erase-heading" aria-describedby="erase-text" className="confirm">
          <h4 id="erase-heading">Erase your dashboard data?</h4>
          <p id="erase-text">
            This deletes your dashboard profile, your order history here and the link to your Stripe customer, and signs
            you out. Stripe's own records of your payments are not touched. It cannot be undone.
          </p>
          <div className="actions">
            <button className="danger" onClick={() => void erase()} disabled={busy !== null} aria-busy={busy === "erase"}>
              Yes, erase my data
            </button>
            <button className="secondary" onClick={() => setConfirming(false)} disabled={busy !== null}>
              Cancel
            </button>
          </div>
        </div>
      )}
    </section>
  );
}

/** Saves `value` as a JSON file through the browser's download. */
function download(name: string, value: unknown) {
  const url = URL.createObjectURL(new Blob([JSON.stringify(value, null, 2)], { type: "application/json" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  // Revoked a little later: revoking at once can cancel a download the browser has not read yet.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function Field({ name, label, error, children }: { name: string; label: string; error?: string; children: React.ReactNode }) {
  return (
    <div className="field">
      <label htmlFor={name}>{label}</label>
      {children}
      {error && (
        <p className="field-error" id={`${name}-error`} role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

function toUpdate(profile: Profile): ProfileUpdate {
  return {
    email: profile.email ?? null,
    displayName: profile.displayName ?? null,
    avatarUrl: profile.avatarUrl ?? null,
    preferredWallet: profile.preferredWallet ?? null,
    shippingAddress: profile.shippingAddress
      ? { ...profile.shippingAddress, line2: profile.shippingAddress.line2 ?? null, region: profile.shippingAddress.region ?? null }
      : null,
    dashboardSettings: profile.dashboardSettings,
  };
}

/** Empty inputs mean "not set": send null rather than an empty string. */
function clean(update: ProfileUpdate): ProfileUpdate {
  const blank = (v: string | null | undefined): string | null => (v && v.trim() ? v : null);
  const a = update.shippingAddress;
  const filled = a !== null && [a.line1, a.line2, a.city, a.region, a.postalCode, a.country].some((v) => blank(v) !== null);
  return {
    ...update,
    email: blank(update.email),
    displayName: blank(update.displayName),
    avatarUrl: blank(update.avatarUrl),
    preferredWallet: blank(update.preferredWallet),
    shippingAddress: a !== null && filled ? { ...a, line2: blank(a.line2), region: blank(a.region) } : null,
  };
}

const STATUSES: OrderStatus[] = ["processing", "succeeded", "failed", "canceled", "refunded", "partially_refunded", "disputed"];

function label(status: OrderStatus): string {
  return status.replace("_", " ");
}

function ago(iso: string | null | undefined): string {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

function OrdersView({ client, onOpen, onUnauthorized }: { client: DashboardClient; onOpen: (id: string) => void; onUnauthorized: () => void }) {
  const [status, setStatus] = useState<OrderStatus | "">("");
  const [after, setAfter] = useState("");
  const [before, setBefore] = useState("");
  const [orders, setOrders] = useState<OrderSummary[]>([]);
  const [page, setPage] = useState<OrdersPage | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);

  const filters = useMemo(
    () => ({
      status: status || undefined,
      createdAfter: after ? new Date(`${after}T00:00:00Z`).toISOString() : undefined,
      createdBefore: before ? new Date(`${before}T00:00:00Z`).toISOString() : undefined,
    }),
    [status, after, before],
  );
  const fetchPage = useCallback(
    async (pageToken?: string) => {
      setLoading(true);
      setError(null);
      try {
        const next = await client.listOrders(pageToken ? { pageToken } : { filters, limit: 10 });
        setOrders((current) => (pageToken ? [...current, ...next.items] : next.items));
        setPage(next);
      } catch (e) {
        if (e instanceof DashboardApiError && e.status === 401) return onUnauthorized();
        setError(describe(e));
      } finally {
        setLoading(false);
      }
    },
    [client, filters, onUnauthorized],
  );
  useEffect(() => void fetchPage(), [fetchPage]);

  return (
    <section aria-labelledby="orders-heading">
      <h2 id="orders-heading">Your orders</h2>
      <p className="muted freshness" aria-live="polite">
        {page?.refreshing ? "Refreshing from Stripe…" : `Synced ${ago(page?.syncedAt)}`}
        {page?.stale && !page.refreshing ? " (may be out of date)" : ""}
      </p>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Status
          <select value={status} onChange={(e) => setStatus(e.target.value as OrderStatus | "")}>
            <option value="">All</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {label(s)}
              </option>
            ))}
          </select>
        </label>
        <label>
          From
          <input type="date" value={after} onChange={(e) => setAfter(e.target.value)} />
        </label>
        <label>
          Before
          <input type="date" value={before} onChange={(e) => setBefore(e.target.value)} />
        </label>
      </form>
      {error && <p role="alert" className="notice error">{error}</p>}
      {!error && !loading && orders.length === 0 && <p className="empty">No orders yet{status || after || before ? " match these filters" : ""}.</p>}
      <ul className="orders">
        {orders.map((order) => (
          <li key={order.orderId}>
            <button className="order" onClick={() => onOpen(order.orderId)} aria-label={`Order ${order.orderNumber}`}>
              <span className="number">{order.orderNumber}</span>
              <span className="date">{new Date(order.createdAt).toLocaleDateString()}</span>
              <span className={`status ${order.status}`}>{label(order.status)}</span>
              <span className="amount">{formatMoney(order.amount, order.currency)}</span>
            </button>
          </li>
        ))}
      </ul>
      {loading && <p aria-busy="true">Loading orders…</p>}
      {page?.next_page && !loading && (
        <button onClick={() => void fetchPage(page.next_page ?? undefined)}>Load more</button>
      )}
    </section>
  );
}

function OrderView({ client, orderId, onBack }: { client: DashboardClient; orderId: string; onBack: () => void }) {
  const [order, setOrder] = useState<Order | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    client.getOrder(orderId).then(setOrder, (e: unknown) =>
      setError(e instanceof DashboardApiError && e.status === 404 ? "This order does not exist." : describe(e)),
    );
  }, [client, orderId]);
  const money = (amount: number) => formatMoney(amount, order?.currency ?? "USD");
  return (
    <section aria-labelledby="order-heading">
      <button className="secondary" onClick={onBack}>
        ← All orders
      </button>
      {error && <p role="alert" className="notice error">{error}</p>}
      {!order && !error && <p aria-busy="true">Loading the order…</p>}
      {order && (
        <>
          <h2 id="order-heading">Order {order.orderNumber}</h2>
          <p>
            <span className={`status ${order.status}`}>{label(order.status)}</span> · placed {new Date(order.createdAt).toLocaleString()} · total{" "}
            <strong>{money(order.amount)}</strong>
            {order.amountRefunded > 0 && <> · refunded {money(order.amountRefunded)}</>}
          </p>
          {order.receiptUrl && (
            <p>
              <a href={order.receiptUrl} target="_blank" rel="noreferrer">
                View receipt
              </a>
            </p>
          )}
          <h3>Items</h3>
          {order.items.length === 0 ? (
            <p className="empty">No item details for this order.</p>
          ) : (
            <table>
              <thead>
                <tr><th>Item</th><th>Qty</th><th>Total</th></tr>
              </thead>
              <tbody>
                {order.items.map((item, i) => (
                  <tr key={i}>
                    <td>{item.description}</td>
                    <td>{item.quantity}</td>
                    <td>{money(item.amountTotal)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <h3>Payment timeline</h3>
          <ol className="timeline">
            {[
              ...order.charges.map((c) => ({ at: c.createdAt, text: `Payment ${c.status}: ${money(c.amount)}${c.failureMessage ? ` (${c.failureMessage})` : ""}` })),
              ...order.refunds.map((r) => ({ at: r.createdAt, text: `Refund ${r.status}: ${money(r.amount)}` })),
              ...order.disputes.map((d) => ({ at: d.createdAt, text: `Dispute (${d.reason}) ${d.status.replace(/_/g, " ")}: ${money(d.amount)}` })),
            ]
              .sort((a, b) => a.at.localeCompare(b.at))
              .map((event, i) => (
                <li key={i}>
                  <time dateTime={event.at}>{new Date(event.at).toLocaleString()}</time> {event.text}
                </li>
              ))}
          </ol>
          {order.shipping && (
            <>
              <h3>Shipping</h3>
              <address>
                {[order.shipping.name, order.shipping.line1, order.shipping.line2, order.shipping.city, order.shipping.region, order.shipping.postalCode, order.shipping.country]
                  .filter(Boolean)
                  .join(", ")}
              </address>
            </>
          )}
        </>
      )}
    </section>
  );
}
