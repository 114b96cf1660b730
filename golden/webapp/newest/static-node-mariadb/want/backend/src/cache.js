// No cache was chosen for this project (cache=none): the items API reads the database
// directly. app.js treats a null cache as "no cache"; to add one, return an object with
// get(id), set(item), ping() and close() here.

export function createCache() {
  return null;
}
