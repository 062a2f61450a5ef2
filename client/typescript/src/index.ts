/**
 * Typed client of the member dashboard API.
 *
 * `schema.d.ts` is generated from the checked-in `openapi/dashboard.json` by openapi-typescript
 * (`npm run generate`; `npm run check` fails when it is out of date). This file is the thin,
 * hand-written layer on top of openapi-fetch: base URL, bearer token provider, one error type
 * that exposes the API's stable `error_code`, an async iterator over paginated orders, and the
 * member's export (collected across its pages) and erasure.
 */
import createClient, { type Client } from "openapi-fetch";
import type { components, operations, paths } from "./schema";

export type { components, operations, paths };
export type Schemas = components["schemas"];
export type Profile = Schemas["Profile"];
/** Every editable field, each one said (`null` clears it): the body of `updateProfile`. */
export type ProfileUpdate = Schemas["ProfileUpdate"];
/** A JSON Merge Patch of the editable fields: the body of `patchProfile`. */
export type ProfilePatch = Schemas["ProfilePatch"];
export type OrderSummary = Schemas["OrderSummary"];
export type OrdersPage = Schemas["OrdersPage"];
export type Order = Schemas["Order"];
export type OrderStatus = Schemas["OrderStatus"];
export type SyncStatus = Schemas["SyncStatus"];
export type ApiErrorBody = Schemas["ApiError"];
export type ExportPage = Schemas["ExportPage"];
/** The member's whole export: the first page's profile, sync status and audit note, every page's orders. */
export type DashboardExport = Omit<ExportPage, "nextPageToken">;
export type ErasureReport = Schemas["ErasureReport"];
export type OrderFilters = Omit<
  NonNullable<operations["list_orders"]["parameters"]["query"]>,
  "page_token" | "limit"
>;

/** An error answered by the API (or a network failure, with status 0). */
export class DashboardApiError extends Error {
  readonly status: number;
  /** Stable code to match on, e.g. `precondition_failed` or `invalid_email`. */
  readonly errorCode: string;
  /** JSON path of the input at fault, e.g. `shippingAddress.country`. */
  readonly field: string | null;
  /** For 503: seconds to wait before retrying. */
  readonly retryAfterSeconds: number | null;
  readonly requestId: string | null;

  constructor(status: number, body: Partial<ApiErrorBody> | undefined, requestId: string | null) {
    super(body?.message ?? `request failed with status ${status}`);
    this.name = "DashboardApiError";
    this.status = status;
    this.errorCode = body?.error_code ?? (status === 0 ? "network_error" : "unknown_error");
    this.field = body?.field ?? null;
    this.retryAfterSeconds = body?.retry_after_seconds ?? null;
    this.requestId = requestId;
  }
}

export interface DashboardClientOptions {
  /** The API's base URL, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** Returns the bearer token for each call (may refresh it); `null` sends none. */
  token: () => string | null | Promise<string | null>;
  /** A fetch implementation (defaults to the global one). */
  fetch?: typeof globalThis.fetch;
}

/** A profile together with the ETag to send back when updating it. */
export interface VersionedProfile {
  profile: Profile;
  etag: string;
}

export class DashboardClient {
  /** The raw openapi-fetch client, for calls the wrapper does not cover. */
  readonly raw: Client<paths>;

  constructor(options: DashboardClientOptions) {
    this.raw = createClient<paths>({
      baseUrl: options.baseUrl.replace(/\/$/, ""),
      fetch: options.fetch,
    });
    this.raw.use({
      async onRequest({ request }) {
        const token = await options.token();
        if (token) {
          request.headers.set("Authorization", `Bearer ${token}`);
        }
        return request;
      },
    });
  }

  async getProfile(): Promise<VersionedProfile> {
    const { data, error, response } = await this.raw.GET("/dashboard/profile");
    return { profile: unwrap(data, error, response), etag: response.headers.get("ETag") ?? "" };
  }

  /**
   * Replaces every editable field (each must be present; `null` clears it); `etag` must be the
   * one from the last read (412 otherwise).
   */
  async updateProfile(update: ProfileUpdate, etag: string): Promise<VersionedProfile> {
    const { data, error, response } = await this.raw.PUT("/dashboard/profile", {
      params: { header: { "If-Match": etag } },
      body: update,
    });
    return { profile: unwrap(data, error, response), etag: response.headers.get("ETag") ?? "" };
  }

  /**
   * Changes only what `patch` names (RFC 7396 JSON Merge Patch: a member left out is kept,
   * `null` clears it, nested objects merge); `etag` as for `updateProfile`.
   */
  async patchProfile(patch: ProfilePatch, etag: string): Promise<VersionedProfile> {
    const { data, error, response } = await this.raw.PATCH("/dashboard/profile", {
      params: { header: { "If-Match": etag } },
      body: patch,
      // The server reads any application/*+json body as JSON; this names what it is.
      headers: { "Content-Type": "application/merge-patch+json" },
    });
    return { profile: unwrap(data, error, response), etag: response.headers.get("ETag") ?? "" };
  }

  /** One page of orders: the first with `filters`, the next ones with `pageToken` only. */
  async listOrders(options: { filters?: OrderFilters; limit?: number; pageToken?: string } = {}): Promise<OrdersPage> {
    const query = options.pageToken
      ? { page_token: options.pageToken }
      : { ...options.filters, limit: options.limit };
    const { data, error, response } = await this.raw.GET("/dashboard/orders", { params: { query } });
    return unwrap(data, error, response);
  }

  /** Every order matching `filters`, newest first, fetched page by page as it is iterated. */
  async *orders(filters: OrderFilters = {}, pageSize = 50): AsyncGenerator<OrderSummary, void, undefined> {
    let page = await this.listOrders({ filters, limit: pageSize });
    for (;;) {
      yield* page.items;
      if (!page.next_page) {
        return;
      }
      page = await this.listOrders({ pageToken: page.next_page });
    }
  }

  async getOrder(orderId: string): Promise<Order> {
    const { data, error, response } = await this.raw.GET("/dashboard/orders/{orderId}", {
      params: { path: { orderId } },
    });
    return unwrap(data, error, response);
  }

  async getSyncStatus(): Promise<SyncStatus> {
    const { data, error, response } = await this.raw.GET("/dashboard/sync-status");
    return unwrap(data, error, response);
  }

  /** One page of the member's data export: the first without `pageToken`, then each `nextPageToken`. */
  async exportPage(pageToken?: string): Promise<ExportPage> {
    const query = pageToken ? { pageToken } : {};
    const { data, error, response } = await this.raw.GET("/dashboard/export", { params: { query } });
    return unwrap(data, error, response);
  }

  /**
   * The member's whole export as one document, following `nextPageToken` page by page (the
   * server pages it to keep each response small; a member with many orders makes many requests).
   */
  async exportAll(): Promise<DashboardExport> {
    const { nextPageToken, ...first } = await this.exportPage();
    const orders = [...first.orders];
    for (let token = nextPageToken; token; ) {
      const page = await this.exportPage(token);
      orders.push(...page.orders);
      token = page.nextPageToken;
    }
    return { ...first, orders };
  }

  /**
   * Erases the member's dashboard data (profile, cached orders, Stripe customer link; Stripe's
   * own records stay). `etag` as for `updateProfile`; an erasure that was interrupted is
   * completed whatever `etag` says. The next `getProfile` starts a fresh profile.
   */
  async eraseProfile(etag: string): Promise<ErasureReport> {
    const { data, error, response } = await this.raw.DELETE("/dashboard/profile", {
      params: { header: { "If-Match": etag } },
    });
    return unwrap(data, error, response);
  }
}

function unwrap<T>(data: T | undefined, error: unknown, response: Response): T {
  if (data === undefined || !response.ok) {
    throw new DashboardApiError(
      response.status,
      error as Partial<ApiErrorBody> | undefined,
      response.headers.get("x-request-id"),
    );
  }
  return data;
}

/** Formats minor units of an ISO 4217 currency, e.g. `formatMoney(1250, "USD")` -> `$12.50`. */
export function formatMoney(amount: number, currency: string, locale?: string): string {
  const format = new Intl.NumberFormat(locale, { style: "currency", currency });
  const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
  return format.format(amount / 10 ** digits);
}
