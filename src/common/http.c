/*
 * http.c - HTTP client on libcurl (see http.h).
 *
 * One CURL easy handle per thread, created on first use and kept in a
 * pthread key whose destructor cleans it up when the thread exits; it is
 * curl_easy_reset() before every request, which keeps its connection cache,
 * so repeated calls to one server reuse the TCP connection.
 *
 * The reply body is collected in a growing buffer; the write callback
 * refuses (and so aborts the transfer) once it would pass the cap.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/authurls.h"
#include "common/http.h"
#include "common/log.h"
#include "common/sigreq.h"

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static pthread_key_t http_key;
static CURLcode http_global_rc = CURLE_FAILED_INIT;

struct http_buf {
	char *data;
	size_t len, cap, max;
	bool overflow;
};

static void
http_handle_free(void *p)
{
	curl_easy_cleanup(p);
}

static void
http_global_init(void)
{
	http_global_rc = curl_global_init(CURL_GLOBAL_ALL);
	if (pthread_key_create(&http_key, http_handle_free) != 0)
		http_global_rc = CURLE_FAILED_INIT;
}

/* This thread's handle, reset for a new request; NULL on failure. */
static CURL *
http_handle(struct err *e)
{
	CURL *h;

	pthread_once(&http_once, http_global_init);
	if (http_global_rc != CURLE_OK) {
		err_set(e, "http: libcurl did not initialise");
		return NULL;
	}
	h = pthread_getspecific(http_key);
	if (h != NULL) {
		curl_easy_reset(h);
		return h;
	}
	if ((h = curl_easy_init()) == NULL) {
		err_set(e, "http: cannot create a curl handle");
		return NULL;
	}
	if (pthread_setspecific(http_key, h) != 0) {
		curl_easy_cleanup(h);
		err_set(e, "http: cannot keep a curl handle");
		return NULL;
	}
	return h;
}

static size_t
http_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct http_buf *b = userdata;
	size_t n = size * nmemb;

	if (n > b->max - b->len) {
		b->overflow = true;
		return 0;	/* aborts the transfer */
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->data, cap)) == NULL)
			return 0;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

int
http_request(const char *method, const char *url,
	     const char *const *headers, const void *body, size_t len,
	     long timeout_ms, size_t max_reply, struct http_reply *r,
	     struct err *e)
{
	struct http_buf b = { NULL, 0, 0, max_reply ? max_reply : HTTP_REPLY_MAX,
			      false };
	struct curl_slist *hl = NULL, *t;
	CURL *h;
	CURLcode rc;
	long connect_ms;

	memset(r, 0, sizeof(*r));
	if ((h = http_handle(e)) == NULL)
		return -1;
	if (timeout_ms <= 0)
		timeout_ms = HTTP_TIMEOUT_MS;
	connect_ms = timeout_ms < HTTP_CONNECT_TIMEOUT_MS ?
	    timeout_ms : HTTP_CONNECT_TIMEOUT_MS;

	for (; headers != NULL && *headers != NULL; headers++) {
		if ((t = curl_slist_append(hl, *headers)) == NULL) {
			err_set(e, "http: out of memory");
			goto bad;
		}
		hl = t;
	}
	/* libcurl would otherwise send "Expect: 100-continue" for big
	 * bodies and wait for the server's go-ahead. */
	if ((t = curl_slist_append(hl, "Expect:")) == NULL) {
		err_set(e, "http: out of memory");
		goto bad;
	}
	hl = t;

	curl_easy_setopt(h, CURLOPT_URL, url);
	/* Send the path exactly as given: a signature covers it. */
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	if (body != NULL) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)len);
	}

	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		if (b.overflow)
			err_set(e, "%s %s: reply larger than %zu bytes",
				method, url, b.max);
		else
			err_set(e, "%s %s: %s", method, url,
				curl_easy_strerror(rc));
		goto bad;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(hl);
	if (b.data == NULL && (b.data = strdup("")) == NULL) {
		err_set(e, "http: out of memory");
		return -1;
	}
	r->body = b.data;
	r->len = b.len;
	return 0;
bad:
	curl_slist_free_all(hl);
	free(b.data);
	return -1;
}

void
http_reply_free(struct http_reply *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

/* Is this reply the authority's replay refusal? */
static bool
authority_is_replay(long status, const struct http_reply *r)
{
	return status == 409 && r->body != NULL &&
	    strstr(r->body, "\"error\":\"replayed request") != NULL;
}

int
authority_call(const char *base_url, const char *method, const char *path,
	       json_t *body, const uint8_t *seed, long *status,
	       json_t **reply, struct err *e)
{
	return authority_call_within(base_url, method, path, body, seed, 0,
				     status, reply, e);
}

/* One authority, one request (with its replay and rate re-sign). */
static int
authority_call_one(const char *base_url, const char *method,
		   const char *path, json_t *body, const uint8_t *seed,
		   long timeout_ms, long *status, json_t **reply,
		   struct err *e)
{
	char url[2048], hkey[160], hdate[80], hsig[200];
	const char *headers[5];
	struct http_reply r = { 0, NULL, 0 };
	struct sigreq sr;
	char *text = NULL;
	size_t len = 0, blen;
	json_error_t je;
	time_t last = 0;
	int attempt, nh;

	if (reply != NULL)
		*reply = NULL;
	blen = strlen(base_url);
	while (blen > 0 && base_url[blen - 1] == '/')
		blen--;
	if ((size_t)snprintf(url, sizeof(url), "%.*s%s", (int)blen, base_url,
			     path) >= sizeof(url))
		return err_set(e, "authority: URL too long");
	if (body != NULL) {
		if ((text = json_dumps(body, JSON_COMPACT)) == NULL)
			return err_set(e, "authority: cannot encode request");
		len = strlen(text);
	}

	for (attempt = 0; attempt < 2; attempt++) {
		nh = 0;
		if (body != NULL)
			headers[nh++] = "Content-Type: application/json";
		if (seed != NULL) {
			time_t now = time(NULL);

			/* A retry must carry another date, so another
			 * signature: wait for the next second. */
			while (attempt > 0 && now <= last) {
				struct timespec ts = { 0, 50 * 1000 * 1000 };

				nanosleep(&ts, NULL);
				now = time(NULL);
			}
			last = now;
			if (sigreq_sign(seed, method, path, text ? text : "",
					len, now, &sr, e) == -1)
				goto bad;
			snprintf(hkey, sizeof(hkey), "%s: %s", SIGREQ_HDR_KEY,
				 sr.key);
			snprintf(hdate, sizeof(hdate), "%s: %s",
				 SIGREQ_HDR_DATE, sr.date);
			snprintf(hsig, sizeof(hsig), "%s: %s", SIGREQ_HDR_SIG,
				 sr.sig);
			headers[nh++] = hkey;
			headers[nh++] = hdate;
			headers[nh++] = hsig;
		}
		headers[nh] = NULL;
		if (http_request(method, url, headers, text, len, timeout_ms, 0, &r,
				 e) == -1)
			goto bad;
		if (seed == NULL || attempt > 0)
			break;
		if (r.status == 429) {
			/* over this address's rate of signed requests: a
			 * second refills its bucket by the rate */
			struct timespec ts = { 1, 0 };

			http_reply_free(&r);
			nanosleep(&ts, NULL);
			continue;
		}
		if (!authority_is_replay(r.status, &r))
			break;
		http_reply_free(&r);
	}

	*status = r.status;
	if (r.len > 0 && reply != NULL) {
		*reply = json_loadb(r.body, r.len, 0, &je);
		if (*reply == NULL) {
			err_set(e, "authority: %s %s: %ld reply is not JSON: %s",
				method, path, r.status, je.text);
			goto bad;
		}
	}
	http_reply_free(&r);
	free(text);
	return 0;
bad:
	http_reply_free(&r);
	free(text);
	return -1;
}

/*
 * Walk the list from the last good URL, those known down last
 * (authurls_order): on to the next after no usable reply or a 5xx, stop
 * at any other answer; remember each outcome.  The signature
 * covers method, path, date and body, not the host, so the same request is
 * valid at each authority; each attempt signs afresh (authority_call_one).
 * When every URL fails, the last one's outcome is returned.
 */
int
authority_call_within(const char *base_url, const char *method,
		      const char *path, json_t *body, const uint8_t *seed,
		      long timeout_ms, long *status, json_t **reply,
		      struct err *e)
{
	size_t order[AUTHURLS_MAX], k, i;
	struct authurls *l;
	int rc = -1;

	if (reply != NULL)
		*reply = NULL;
	if ((l = malloc(sizeof(*l))) == NULL)
		return err_set(e, "authority: out of memory");
	if (authurls_parse(base_url, l, e) == -1) {
		free(l);
		return -1;
	}
	authurls_order(base_url, l->n, order);
	for (k = 0; k < l->n; k++) {
		i = order[k];
		*status = 0;
		rc = authority_call_one(l->url[i], method, path, body, seed,
					timeout_ms, status, reply, e);
		authurls_result(base_url, i, !authurls_failover(rc, *status));
		if (!authurls_failover(rc, *status) || k + 1 == l->n)
			break;
		if (rc == -1)
			log_warn("authority %s: %s; trying %s", l->url[i], e->msg,
				 l->url[order[k + 1]]);
		else
			log_warn("authority %s: %s %s answered %ld; trying %s",
				 l->url[i], method, path, *status,
				 l->url[order[k + 1]]);
		if (reply != NULL) {
			json_decref(*reply);
			*reply = NULL;
		}
	}
	free(l);
	return rc;
}

int
authority_refused(long status, const json_t *reply, struct err *e)
{
	const char *msg = NULL;

	if (json_is_object(reply))
		msg = json_string_value(json_object_get(reply, "error"));
	return err_set(e, "authority: %ld: %s", status,
		       msg ? msg : "(no error message)");
}
